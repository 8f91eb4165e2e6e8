"""ScaleGMN: a graph metanetwork equivariant to neuron permutations, rescalings and sign flips
(Kalogeropoulos, Bouritsas and Panagakis, *Scale Equivariant Graph Metanetworks*, NeurIPS 2024).

A ReLU neuron's incoming weights and bias can be multiplied by q > 0 and its outgoing weights
by 1/q, a tanh or sine neuron's by -1 and -1, without changing the network's function. Here a
hidden node state moves as `v_i -> q_i v_i` and an edge state as `e_ij -> (q_j / q_i) e_ij`
(sender i, receiver j), exactly as the node's bias and the edge's weight do, and every block
keeps these laws (`scale_layers`):

    v_i <- ENC_v(x_i) = Γ_v x_i ⊙ PE_i (+ PE'_i where the neuron admits no factor)
    e_ij <- ENC_e(w_ij) = Γ_e w_ij ⊙ PE_ij (+ PE'_ij where neither end admits a factor)
    m_j  = mean_i ScaleEq([v_j, Γ_1 v_i ⊙ Γ_2 e_ij])                  (forward: moves with q_j)
    b_i  = mean_j ScaleEq([v_i, Γ_3 v_j ⊙ Γ_4 e_ij^{-1}])      (ScaleGMN-B only: moves with q_i)
    v_j <- v_j + ScaleEq([v_j, m_j (, b_j)])
    e_ij <- e_ij + Γ_5 e_ij ⊙ MLP(Inv(e_ij), Inv(v_i), Inv(v_j))
    y    = MLP(mean per kind of neuron of Inv(v), mean of Inv(e))    (invariant readout)

with `ScaleEq(x) = Γ x ⊙ Inv(x)` and `Inv` invariant to the row's factor and bounded
(canonicalisation `x / ‖x‖`, plus `log(1 + ‖x‖)` where no positive scale acts, symmetrisation
`ρ(Ac + b) + ρ(-Ac + b)` for sign), so every block grows at most linearly in its states.
Positional encodings (PE: embeddings of node type, layer, position, program; edge type, layers, operation) come
from the shared `GraphEncoder` run on the graph with every value that carries a factor zeroed,
so they are invariant: they multiply the states of neurons that admit a factor and are added
to those that do not (inputs, outputs, neurons after BatchNorm or inside attention, which are
then handled as by a permutation-equivariant GMN).

Which neuron admits which factor is read per neuron group off the traced program
(`gmn_jax.graphs.scaling.scaling_kinds`), so one model serves any traced architecture and
graphs that mix ReLU, tanh and sine neurons. The graphs must carry it as `nodes['scaling']`
(`with_scaling_kinds`).

Where it departs from the paper and its released code: the released bidirectional variant
passes backward messages with the forward edge states, which move with `q_j / q_i` instead of
`q_i / q_j`, so it is not scale-equivariant; here backward messages read `e / ‖e‖²`
(`reciprocal_backward=True`), which moves with the reciprocal factor and stays bounded
(`‖e‖ / max(‖e‖, ε)² <= 1 / ε`) where the element-wise `1 / e` would not. Messages are averaged
(sum in the paper). Only the invariant (per-graph) readout is built; the output graph's
`nodes['hidden']` and `edges['hidden']` hold the equivariant final states.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.graphs.scaling import SCALE, SIGN, scaling_kinds
from gmn_jax.metanets import aggregation as agg_ops
from gmn_jax.metanets.batching import GraphIndex, graph_index
from gmn_jax.metanets.features import GraphEncoder
from gmn_jax.metanets.gmn import stack_layers
from gmn_jax.metanets.readout import MLP, pool_graphs
from gmn_jax.metanets.scale_layers import (DEFAULT_EPSILON, ScaleEquivariant, ScaleInvariant,
                                           reciprocal)

SCALING_FIELD = 'scaling'

# Which rows admit a positive scale / a sign flip: nodes, then edges (either end).
FactorMasks = tuple[jax.Array, jax.Array, jax.Array, jax.Array]


def with_scaling_kinds(graph: jraph.GraphsTuple, pg) -> jraph.GraphsTuple:
  """Adds `nodes['scaling']` (`scaling_kinds(pg)`: `NONE`, `SIGN` or `SCALE` per neuron, int8)
  to graphs of the template `pg`. Host-side.

  Args:
    graph: `pg.encode(variables)`, or a stack of them (`jax.vmap(pg.encode)`: node fields
      `[rows, n_node, ...]`); the kinds are broadcast over the leading axes.
    pg: the ParameterGraph the graph was encoded with.

  Returns:
    The graph with the extra node field; permutation symmetries and `batch` carry it along.
  """
  kinds = scaling_kinds(pg)
  lead = np.shape(graph.nodes['type'])[:-1]
  if np.shape(graph.nodes['type'])[-1] != kinds.shape[0]:
    raise ValueError(f'the graph has {np.shape(graph.nodes["type"])[-1]} nodes but {pg!r} has '
                     f'{kinds.shape[0]}: pass the template the graph was encoded with.')
  field = np.ascontiguousarray(np.broadcast_to(kinds, lead + kinds.shape))
  return graph._replace(nodes={**graph.nodes, SCALING_FIELD: field})


def factor_masks(graphs: jraph.GraphsTuple, index: GraphIndex) -> FactorMasks:
  """(node has scale, node has sign, edge has scale, edge has sign), `[n_node]` and `[n_edge]`
  bools; an edge carries every factor of its two ends. Jittable."""
  if SCALING_FIELD not in graphs.nodes:
    raise ValueError("ScaleGMN needs each neuron's scaling kind in nodes['scaling']: encode "
                     'graphs with gmn_jax.with_scaling_kinds(pg.encode(variables), pg) (or on '
                     'a vmapped stack) before batching.')
  kind = jnp.asarray(graphs.nodes[SCALING_FIELD])
  node_scale, node_sign = kind == SCALE, kind == SIGN
  s, r = index.senders, index.receivers
  return (node_scale, node_sign, node_scale[s] | node_scale[r], node_sign[s] | node_sign[r])


def _pad_columns(x: jax.Array, width: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), (0, max(0, width - x.shape[1]))))


class ScaleGMNLayer(nn.Module):
  """One ScaleGMN block: forward (and backward) messages, node and edge updates. See the
  module docstring. Carry: `(v [n_node, d], e [n_edge, d], FactorMasks)`."""

  dim: int
  bidirectional: bool
  reciprocal_backward: bool
  activation: Callable
  epsilon: float

  def _messages(self, v: jax.Array, e: jax.Array, to: jax.Array, other: jax.Array,
                to_scale: jax.Array, to_sign: jax.Array, name: str) -> jax.Array:
    """`[n_node, d]` mean over edges of messages to `to` from `other`, moving with `q_to`
    when `e` moves with `q_to / q_other`."""
    d = self.dim
    neighbour = agg_ops.gather(nn.Dense(d, use_bias=False, name=f'{name}_neighbour')(v), other)
    product = neighbour * nn.Dense(d, use_bias=False, name=f'{name}_edge')(e)
    x = jnp.concatenate([agg_ops.gather(v, to), product], axis=-1)
    m = ScaleEquivariant(d, d, self.activation, name=name)(
        x, to_scale[to], to_sign[to])
    return agg_ops.segment_mean(m, to, v.shape[0])

  @nn.compact
  def __call__(self, carry: tuple[jax.Array, jax.Array, FactorMasks],
               index: GraphIndex) -> tuple[tuple[jax.Array, jax.Array, FactorMasks], None]:
    v, e, masks = carry
    node_scale, node_sign, edge_scale, edge_sign = masks
    s, r, d, act = index.senders, index.receivers, self.dim, self.activation
    parts = [v, self._messages(v, e, r, s, node_scale, node_sign, 'forward')]
    if self.bidirectional:
      backward = reciprocal(e, self.epsilon) if self.reciprocal_backward else e
      parts.append(self._messages(v, backward, s, r, node_scale, node_sign, 'backward'))
    small = nn.initializers.variance_scaling(0.1, 'fan_in', 'truncated_normal')
    v_new = v + ScaleEquivariant(d, d, act, small, name='node_update')(
        jnp.concatenate(parts, axis=-1), node_scale, node_sign)

    # edge update: the edge's own state times a gate of canonicalised (invariant) states
    inv_v = ScaleInvariant(d, d, act, name='node_invariant')(
        v, node_scale, node_sign)
    inv_e = ScaleInvariant(d, d, act, name='edge_invariant')(
        e, edge_scale, edge_sign)
    hidden = (nn.Dense(d, name='gate_edge')(inv_e)
              + agg_ops.gather(nn.Dense(d, use_bias=False, name='gate_sender')(inv_v), s)
              + agg_ops.gather(nn.Dense(d, use_bias=False, name='gate_receiver')(inv_v), r))
    gate = nn.Dense(d, name='gate_out')(act(hidden))
    e_new = e + nn.Dense(d, use_bias=False, kernel_init=small, name='edge_update')(e) * gate
    return (v_new, e_new, masks), None


class ScaleGMN(nn.Module):
  """Scale- and sign-equivariant graph metanetwork: `jraph.GraphsTuple -> jraph.GraphsTuple`.

  Input: a (batched, optionally padded) parameter graph carrying `nodes['scaling']`
  (`with_scaling_kinds`). Output: the same graph with `globals` `[n_graph, out_features]`,
  invariant to permutations of interchangeable hidden neurons and to every rescaling / sign
  flip `gmn_jax.graphs.scaling` derives from the traced programs; `nodes['hidden']`
  `[n_node, hidden_dim]` and `edges['hidden']` `[n_edge, hidden_dim]` hold the equivariant
  final states. Jittable.

  Attributes:
    hidden_dim: node and edge state width.
    num_layers: message-passing blocks.
    bidirectional: also pass messages against the edge direction (ScaleGMN-B). Off by
      default: the reciprocal of a near-zero weight's edge state is large (up to 1 / ε), and
      on the CNN zoo such messages kept the B variant from training (docs/scalegmn.md).
    reciprocal_backward: backward messages read `reciprocal(e)` (equivariant); False
      reproduces the released ScaleGMN-B, which reads `e` and is not scale-equivariant (kept
      only to test that defect).
    out_features: width of `globals`.
    readout_hidden: hidden width of the readout MLP.
    activation: ρ of the invariant maps and of the readout.
    epsilon: the backward messages' reciprocal `e / max(‖e‖, ε)²` (see `scale_layers`) is
      exact for edge states of norm above ε and bounded by `1 / ε` below; canonicalisation
      clips at 1e-12. Outputs and gradients stay finite for all-zero neurons.
    value_features, n_frequencies, value_scale: the value encoding of neurons and edges that
      admit no factor (see `GraphEncoder`).
    max_kernel_size, max_param_size: K and P slots reserved at init.
    scan_layers: run the blocks under `nn.scan` (see `gmn.stack_layers`).
  """

  hidden_dim: int = 64
  num_layers: int = 4
  bidirectional: bool = False
  reciprocal_backward: bool = True
  out_features: int = 1
  readout_hidden: int = 64
  activation: Callable = nn.silu
  epsilon: float = DEFAULT_EPSILON
  value_features: str = 'sinusoidal'
  n_frequencies: int = 12
  value_scale: float = 1.0
  max_kernel_size: int = 1
  max_param_size: int = 1
  scan_layers: bool = False

  def _encode(self, graphs: jraph.GraphsTuple, index: GraphIndex,
              masks: FactorMasks) -> tuple[jax.Array, jax.Array]:
    """Initial node `[n_node, d]` and edge `[n_edge, d]` states (see the module docstring)."""
    node_scale, node_sign, edge_scale, edge_sign = masks
    free_v = ~(node_scale | node_sign)[:, None]
    free_e = ~(edge_scale | edge_sign)[:, None]
    nodes, edges = graphs.nodes, graphs.edges
    param = jnp.asarray(nodes['param']) * jnp.asarray(nodes['param_mask'], jnp.float32)
    values_v = [_pad_columns(param, self.max_param_size)]
    masked_nodes = {**nodes, 'param': param * free_v}
    if 'probe' in nodes:  # a neuron's values on the probes move with its factor, as its bias
      probe = jnp.asarray(nodes['probe']) * jnp.asarray(nodes['probe_mask'], jnp.float32)
      values_v.append(probe)
      masked_nodes['probe'] = probe * free_v
    weight = jnp.asarray(edges['weight']) * jnp.asarray(edges['mask'], jnp.float32)
    masked = graphs._replace(nodes=masked_nodes, edges={**edges, 'weight': weight * free_e})
    pe_v, pe_e = GraphEncoder(
        self.hidden_dim, self.hidden_dim, value_features=self.value_features,
        n_frequencies=self.n_frequencies, value_scale=self.value_scale,
        max_kernel_size=self.max_kernel_size, max_param_size=self.max_param_size,
        name='encoder')(masked, index)
    d = self.hidden_dim
    linear = lambda x, name: nn.Dense(d, use_bias=False, name=name)(x)
    v = (linear(jnp.concatenate(values_v, axis=-1), 'node_values')
         * nn.Dense(d, name='node_multiplier')(pe_v)
         + free_v * nn.Dense(d, name='node_offset')(pe_v))
    e = (linear(_pad_columns(weight, self.max_kernel_size), 'edge_values')
         * nn.Dense(d, name='edge_multiplier')(pe_e)
         + free_e * nn.Dense(d, name='edge_offset')(pe_e))
    return v, e

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    index = graph_index(graphs)
    masks = factor_masks(graphs, index)
    v, e = self._encode(graphs, index, masks)
    v, e, _ = stack_layers(
        ScaleGMNLayer, self.num_layers, (v, e, masks), index, dim=self.hidden_dim,
        bidirectional=self.bidirectional, reciprocal_backward=self.reciprocal_backward,
        activation=self.activation, epsilon=self.epsilon, scan=self.scan_layers)
    node_scale, node_sign, edge_scale, edge_sign = masks
    d, act = self.hidden_dim, self.activation
    inv_v = ScaleInvariant(d, d, act, name='readout_node')(v, node_scale,
                                                                          node_sign)
    inv_e = ScaleInvariant(d, d, act, name='readout_edge')(e, edge_scale,
                                                                          edge_sign)
    pooled = pool_graphs(graphs, index, inv_v, inv_e)
    out = MLP((self.readout_hidden, self.out_features), act, name='graph_mlp')(pooled)
    return graphs._replace(nodes={**graphs.nodes, 'hidden': v},
                           edges={**graphs.edges, 'hidden': e}, globals=out)


"""GMN: the graph metanetwork of Lim, Maron, Law, Lorraine and Lucas (ICLR 2024).

A message-passing network on the parameter graph that updates edges, nodes and, optionally,
per-graph globals (the paper's Eqs. for the edge, node and global updates):

    e_ij <- e_ij + MLP_e(v_i, v_j, e_ij, u)
    v_i  <- v_i  + MLP_2(v_i, AGG_j MLP_1(v_i, v_j, e_ij, dir_ij, u), u)
    u    <- u    + MLP_u(mean_i v_i, mean_ij e_ij, u)

as residual pre-norm blocks (LayerNorm on each input). Messages flow along each edge and, with
`bidirectional=True`, also against it; the direction is a feature of the message (its own
bias and its own neighbour projection), so the graph stays a DAG to the network while
information reaches every neuron. All three updates of a layer read the layer's input
(they are simultaneous).

Where it departs from the paper: MLP_1 is a single Dense + activation; its output layer is
folded into MLP_2's first layer, which is exact for sum and mean aggregation and saves one
`[2 n_edge, d] x [d, d]` matmul per layer. The first layers of the MLPs are computed as
per-node projections gathered to the edges, not as a Dense over concatenated gathers (the
same function, fewer FLOPs), and edge-sized arrays are never concatenated or sliced by
columns (on CPU, memory traffic, not FLOPs, bounds these networks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from gmn_jax.metanets import aggregation as agg_ops
from gmn_jax.metanets.batching import GraphIndex, graph_index
from gmn_jax.metanets.metanetwork import Metanetwork


class GMNLayer(nn.Module):
  """One GMN block: edge, node and (optional) global updates. See the module docstring."""

  node_dim: int
  edge_dim: int
  hidden_dim: int
  aggregators: tuple[str, ...]
  scalers: tuple[str, ...]
  avg_log_degree: float
  bidirectional: bool
  update_edges: bool
  activation: Callable

  @nn.compact
  def __call__(self, carry: tuple[jax.Array, jax.Array, jax.Array | None],
               index: GraphIndex) -> tuple[tuple[jax.Array, jax.Array, jax.Array | None], None]:
    v, e, u = carry
    act, h, he = self.activation, self.hidden_dim, self.edge_dim
    s, r = index.senders, index.receivers
    take = agg_ops.gather
    dense = lambda width, name: nn.Dense(width, name=name)
    vn = nn.LayerNorm(name='node_norm')(v)
    en = nn.LayerNorm(name='edge_norm')(e)
    un = nn.LayerNorm(name='global_norm')(u) if u is not None else None

    # MLP_1's first layer on [v_i, v_j, e_ij, dir, u], as projections of each input: the node
    # ones are computed per node and gathered to the edges. Along an edge s -> r the message
    # goes to r (i = r, j = s); against it, to s.
    msg_edge = dense(h, 'message_edge')(en)
    if un is not None:
      msg_edge = msg_edge + take(dense(h, 'message_global')(un), index.edge_graph)
    n_dir = 2 if self.bidirectional else 1
    bias = self.param('direction_bias', nn.initializers.zeros, (n_dir, h))
    forward = act(msg_edge + bias[0] + take(dense(h, 'forward_self')(vn), r)
                  + take(dense(h, 'forward_neighbour')(vn), s))
    parts = [(forward, r)]
    if self.bidirectional:
      backward = act(msg_edge + bias[1] + take(dense(h, 'backward_self')(vn), s)
                     + take(dense(h, 'backward_neighbour')(vn), r))
      parts.append((backward, s))
    agg = agg_ops.aggregate_parts(parts, index.n_node, self.aggregators, self.scalers,
                                  self.avg_log_degree)

    if self.update_edges:
      hidden_e = (dense(he, 'edge_hidden')(en) + take(dense(he, 'edge_sender')(vn), s)
                  + take(dense(he, 'edge_receiver')(vn), r))
      if un is not None:
        hidden_e = hidden_e + take(dense(he, 'edge_global')(un), index.edge_graph)
      e = e + dense(self.edge_dim, 'edge_out')(act(hidden_e))

    node_in = dense(h, 'node_self')(vn) + dense(h, 'node_agg')(agg)
    if un is not None:
      node_in = node_in + take(dense(h, 'node_global')(un), index.node_graph)
    v_new = v + dense(self.node_dim, 'node_out')(act(node_in))

    if u is not None:
      pooled_v = agg_ops.segment_mean(vn, index.node_graph, index.n_graph)
      pooled_e = agg_ops.segment_mean(en, index.edge_graph, index.n_graph)
      hidden_u = act(dense(h, 'global_in')(jnp.concatenate([pooled_v, pooled_e, un], -1)))
      u = u + dense(u.shape[-1], 'global_out')(hidden_u)
    return (v_new, e, u), None


def stack_layers(layer: type[nn.Module], num_layers: int, carry: Any, index: GraphIndex,
                scan: bool = False, remat: bool = False, **fields) -> Any:
  """Applies `num_layers` blocks of `layer`, each with its own parameters.

  `layer(**fields)` maps `(carry, index)` to `(carry, None)`. With `scan=True` the blocks run
  under `nn.scan`: XLA compiles one block whatever the depth (parameters stacked on a leading
  axis under the name `layers`), but on CPU the step runs slower, since every saved
  activation is copied into a stacked buffer for the backward pass. Otherwise the loop is
  unrolled (`layer_0`, `layer_1`, ...). With `remat=True` each block is rematerialised
  (`nn.remat`): the backward pass keeps only the blocks' inputs and recomputes the rest, so
  memory grows with one block's activations instead of all of them (same parameters, same
  names, same values; about one more forward pass of compute).
  """
  if num_layers == 0:
    return carry
  if remat:
    layer = nn.remat(layer)
  if not scan:
    for i in range(num_layers):
      carry, _ = layer(name=f'layer_{i}', **fields)(carry, index)
    return carry
  stack = nn.scan(layer, variable_axes={'params': 0}, split_rngs={'params': True},
                  in_axes=nn.broadcast, length=num_layers)
  carry, _ = stack(name='layers', **fields)(carry, index)
  return carry


class GMN(Metanetwork):
  """Graph metanetwork (Lim et al. 2024): `jraph.GraphsTuple -> jraph.GraphsTuple`.

  Input: a (batched, optionally padded) parameter graph from `pg.encode`, `jraph.batch` or
  `gmn_jax.batch`. Output: the same graph with `globals` `[n_graph, out_features]` (invariant
  per-graph predictions) and per-parameter predictions in `edges['weight']` `[n_edge, K]` and
  `nodes['param']` `[n_node, P]` (equivariant; `pg.decode` of one graph of it is a parameter
  pytree). See `Readout`.

  Attributes:
    node_dim: node vector width.
    edge_dim: edge vector width.
    hidden_dim: message and MLP hidden width (None: `node_dim`).
    num_layers: message-passing blocks.
    aggregation: `'sum'`, `'mean'`, `'max'`, `'min'`, `'std'`, a tuple of these, or `'pna'`
      (mean, min, max, std with identity and amplification degree scalers).
    avg_log_degree: the PNA degree normaliser (see `gmn_jax.mean_log_degree`).
    bidirectional: also pass messages against the edge direction (direction is a feature).
    update_edges: update edge vectors in every block.
    use_globals: keep and update a per-graph vector `u` (the global update).
    global_dim: width of `u`.
    scan_layers: run the blocks under `nn.scan` (compiles faster for deep stacks, runs
      slower on CPU; see `stack_layers`).
    remat_layers: rematerialise each block in the backward pass (less memory for graphs of
      millions of edges; see `stack_layers` and `gmn_jax.metanets.sharded`).
    The readout, activation and value-encoding settings: see `Metanetwork`.
  """

  node_dim: int = 64
  edge_dim: int = 64
  hidden_dim: int | None = None
  num_layers: int = 4
  aggregation: str | Sequence[str] = 'mean'
  avg_log_degree: float = 1.0
  bidirectional: bool = True
  update_edges: bool = True
  use_globals: bool = False
  global_dim: int = 64
  scan_layers: bool = False
  remat_layers: bool = False

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    index = graph_index(graphs)
    aggregators, scalers = agg_ops.resolve_aggregation(self.aggregation)
    v, e = self.encode(graphs, index, self.node_dim, self.edge_dim)
    u = jnp.zeros((index.n_graph, self.global_dim), v.dtype) if self.use_globals else None
    v, e, u = stack_layers(
        GMNLayer, self.num_layers, (v, e, u), index, node_dim=self.node_dim,
        edge_dim=self.edge_dim, hidden_dim=self.hidden_dim or self.node_dim,
        aggregators=aggregators, scalers=scalers, avg_log_degree=self.avg_log_degree,
        bidirectional=self.bidirectional, update_edges=self.update_edges,
        activation=self.activation, scan=self.scan_layers, remat=self.remat_layers)
    v = nn.LayerNorm(name='final_node_norm')(v)
    e = nn.LayerNorm(name='final_edge_norm')(e)
    if u is not None:
      u = nn.LayerNorm(name='final_global_norm')(u)
    return self.readout(graphs, index, v, e, u)

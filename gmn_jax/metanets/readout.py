"""Readouts shared by the metanetworks: invariant per graph, equivariant per parameter.

- Invariant: node vectors are averaged per graph and per kind of neuron (inputs, hidden,
  outputs, heads/blocks), edge vectors per graph; the concatenation goes through an MLP into
  `globals` `[n_graph, out_features]`, optionally standardised first with fixed per-feature
  statistics of the training graphs (`input_statistics`, from `fit_readout_statistics` at
  initialisation): the pooled vectors of different networks can differ by a small fraction of
  their size, which an MLP fed them raw learns from slowly. Padding nodes and edges belong to
  padding graphs, so they never enter a real graph's pool. Lim et al. (2024) pool edges only;
  neural graphs concatenates the output neurons' vectors, which needs one fixed architecture:
  pooling the output neurons as their own kind keeps their information for any architecture,
  and `pool='output'` reads that pool alone (on INRs, weights only, it learns faster than the
  full pool).
- Equivariant: a linear map per edge to its K weight slots and per node to its P parameter
  slots, masked, so that `pg.decode` turns the output into a parameter pytree. With
  `edge_readout='residual'` the output is `theta + gamma * delta` with learned scalars gamma
  (Lim et al. 2024, editing), so that gamma = 0 is the identity on the input parameters.

Jittable, except `fit_readout_statistics` (host-side).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.metanets import aggregation
from gmn_jax.metanets.batching import GraphIndex
from gmn_jax.metanets.features import SlotDecoder

N_NODE_KINDS = 4  # input, hidden, output, other (heads, normalisation blocks)
EDGE_READOUTS = ('residual', 'direct')
POOLS = ('all', 'output')


class MLP(nn.Module):
  """Dense layers with an activation between them (none after the last)."""

  features: Sequence[int]
  activation: Callable = nn.silu

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, width in enumerate(self.features):
      x = nn.Dense(width)(x)
      if i < len(self.features) - 1:
        x = self.activation(x)
    return x


def pool_graphs(graphs: jraph.GraphsTuple, index: GraphIndex, nodes: jax.Array,
                edges: jax.Array, pooled_edges: jax.Array | None = None,
                pool: str = 'all') -> jax.Array:
  """Per-graph pooled vectors; zeros for empty pools. Jittable.

  `pool='all'`: `[n_graph, 4 * node_dim + edge_dim]`, the means of node vectors by kind of
  neuron (input, hidden, output, other) and of edge vectors. `pool='output'`:
  `[n_graph, node_dim]`, the mean of the output neurons' vectors (neural graphs reads the
  output neurons alone; it concatenates them, which needs a fixed number of them).

  `pooled_edges` `[n_graph, edge_dim]`: the per-graph means of `edges`, when the caller has
  them already (accumulated block by block over a graph too large to hold its edge vectors
  in the backward pass, `GMN(edge_chunk=...)`); `edges` is then not read."""
  if pool not in POOLS:
    raise ValueError(f'unknown readout pool {pool!r}; choose from {POOLS}')
  # INPUT 0, HIDDEN 1, OUTPUT 2; HEAD and BLOCK share the last pool.
  kind = jnp.clip(jnp.asarray(graphs.nodes['type']), 0, N_NODE_KINDS - 1)
  seg = index.node_graph * N_NODE_KINDS + kind
  pooled_nodes = aggregation.segment_mean(nodes, seg, index.n_graph * N_NODE_KINDS)
  if pool == 'output':
    return pooled_nodes.reshape(index.n_graph, N_NODE_KINDS, -1)[:, 2]  # NodeType.OUTPUT
  if pooled_edges is None:
    pooled_edges = aggregation.segment_mean(edges, index.edge_graph, index.n_graph)
  return jnp.concatenate(
      [pooled_nodes.reshape(index.n_graph, -1), pooled_edges], axis=-1)


class Readout(nn.Module):
  """Both readouts; returns the output `jraph.GraphsTuple`.

  Output graph: `globals` `[n_graph, out_features]`; `edges['weight']` `[n_edge, K]` and
  `nodes['param']` `[n_node, P]` hold the per-parameter outputs (zeros in masked slots, or
  the input values there for `'residual'`); `edges['hidden']`, `nodes['hidden']` the final
  vectors; every other field is the input's. `pooled_edges`: see `pool_graphs`.

  Attributes:
    out_features: width of the invariant output.
    hidden: width of the invariant MLP's hidden layer.
    edge_readout: `'residual'` (`theta + gamma * delta`) or `'direct'` (`delta`).
    residual_init: initial gamma.
    activation: of the invariant MLP.
    max_kernel_size, max_param_size: slots reserved at init (see `SlotDecoder`).
    input_statistics: `(mean, std)`, tuples over the invariant MLP's input features, to
      standardise that input with (`fit_readout_statistics`); None: read it raw.
    pool: what the invariant MLP reads (`pool_graphs`): `'all'` or `'output'`.
    depth: hidden layers of the invariant MLP, each `hidden` wide (neural graphs' INR
      classifier has two).
  """

  out_features: int = 1
  hidden: int = 64
  edge_readout: str = 'residual'
  residual_init: float = 0.0
  activation: Callable = nn.silu
  max_kernel_size: int = 1
  max_param_size: int = 1
  input_statistics: tuple[tuple[float, ...], tuple[float, ...]] | None = None
  pool: str = 'all'
  depth: int = 1

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple, index: GraphIndex, nodes: jax.Array,
               edges: jax.Array, graph_features: jax.Array | None = None,
               pooled_edges: jax.Array | None = None) -> jraph.GraphsTuple:
    if self.edge_readout not in EDGE_READOUTS:
      raise ValueError(f'unknown edge_readout {self.edge_readout!r}; choose from '
                       f'{EDGE_READOUTS}')
    pooled = pool_graphs(graphs, index, nodes, edges, pooled_edges, self.pool)
    if graph_features is not None:
      pooled = jnp.concatenate([pooled, graph_features], axis=-1)
    if self.input_statistics is not None:
      mean, std = (jnp.asarray(a, pooled.dtype) for a in self.input_statistics)
      if mean.shape != pooled.shape[-1:]:
        raise ValueError(f'input_statistics hold {mean.shape[0]} features, the readout reads '
                         f'{pooled.shape[-1]}: fit them on this model (fit_readout_statistics)')
      pooled = (pooled - mean) / std
    out = MLP((self.hidden,) * self.depth + (self.out_features,), self.activation,
              name='graph_mlp')(pooled)

    weight = jnp.asarray(graphs.edges['weight'])
    param = jnp.asarray(graphs.nodes['param'])
    small = nn.initializers.variance_scaling(0.1, 'fan_in', 'truncated_normal')
    delta_w = SlotDecoder(self.max_kernel_size, small, name='edge_out')(
        edges, weight.shape[1]) * jnp.asarray(graphs.edges['mask'], weight.dtype)
    delta_p = SlotDecoder(self.max_param_size, small, name='node_out')(
        nodes, param.shape[1]) * jnp.asarray(graphs.nodes['param_mask'], param.dtype)
    if self.edge_readout == 'residual':
      init = nn.initializers.constant(self.residual_init)
      gamma = self.param('gamma', init, (2,))
      delta_w = weight + gamma[0] * delta_w
      delta_p = param + gamma[1] * delta_p
    return graphs._replace(
        nodes={**graphs.nodes, 'param': delta_p.astype(param.dtype), 'hidden': nodes},
        edges={**graphs.edges, 'weight': delta_w.astype(weight.dtype), 'hidden': edges},
        globals=out)


def fit_readout_statistics(model: nn.Module, params: Any,
                           batches: Iterable[tuple[jraph.GraphsTuple, np.ndarray]]
                           ) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """Per-feature mean and standard deviation of the invariant MLP's input (the pooled
  vectors) of `model` with `params` over the real graphs of `batches` (`(graphs, mask)`
  pairs), as `Readout.input_statistics` takes them (std 1 where a feature is constant).
  Host-side driver (one compiled forward pass).

  The statistics are of the model they are fitted on; a model built with them reads the same
  parameters (they are a static field, not a parameter), e.g. the initial ones.
  """
  def pooled(p, graphs):
    box = []

    def intercept(f, args, kwargs, context):
      if context.module.name == 'graph_mlp' and context.method_name == '__call__':
        box.append(args[0])
      return f(*args, **kwargs)
    with nn.intercept_methods(intercept):
      model.apply(p, graphs)
    if len(box) != 1:
      raise ValueError(f'{type(model).__name__} has no single invariant readout MLP')
    return box[0]
  fn = jax.jit(pooled)
  values = np.concatenate([np.asarray(fn(params, g))[np.asarray(m, bool)] for g, m in batches])
  mean, std = values.mean(0), values.std(0)
  std = np.where(std > 1e-6 * np.maximum(np.abs(mean), 1e-6), std, 1.0)
  return tuple(map(float, mean)), tuple(map(float, std))

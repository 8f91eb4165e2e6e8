"""Per-layer standardisation of parameter values: from raw weights to weights of unit scale.

Neural graphs normalise each layer with data-set statistics; without it a permutation-only GMN
stays at chance on SIREN INRs (weights ~0.01 after the first layer, ~1 in it).
`fit_layer_statistics` (host-side) computes the data-set statistics and `standardize_per_layer`
(jittable) applies them, or per-graph statistics when none are given. Inside a metanetwork
(`features.GraphEncoder`), `layer_statistics=<statistics>.frozen()` standardises with the
data set's, as neural graphs does, and `normalize_weights=True` with each graph's own, which
divides out a network's scale of each layer (information: on MNIST SIREN INRs per-layer
means and scales alone classify 24% of test INRs) and zeroes a layer holding one value (an
INR's output bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.metanets.batching import GraphIndex, graph_index


class LayerStatistics(NamedTuple):
  """Mean and standard deviation of parameter values per layer.

  Edges are keyed by their receiver's layer, node parameters by the node's layer and slot.
  A metanetwork holds them as a static field (`Metanetwork.layer_statistics`) in the nested
  tuples of `frozen()`, which are hashable and JSON-able.

  Attributes:
    edge_mean: `[..., L]`.
    edge_std: `[..., L]`.
    node_mean: `[..., L, P]`.
    node_std: `[..., L, P]`.
  """

  edge_mean: Any
  edge_std: Any
  node_mean: Any
  node_std: Any

  def frozen(self) -> 'LayerStatistics':
    """The same statistics as nested tuples of Python floats (a module field). Host-side."""
    as_tuple = lambda a: tuple(map(as_tuple, a)) if np.ndim(a) else float(a)
    return LayerStatistics(*(as_tuple(np.asarray(a, np.float64)) for a in self))


def _layer_sums(graphs: jraph.GraphsTuple, index: GraphIndex, max_layers: int,
                per_graph: bool) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
  """Per (graph and) layer count, sum and sum of squares of the used edge weights
  `[S]` and node parameters `[S, P]` (S: `max_layers`, times `n_graph` when `per_graph`)."""
  layer = jnp.clip(jnp.asarray(graphs.nodes['layer']), 0, max_layers - 1)
  n_seg = max_layers * (index.n_graph if per_graph else 1)
  edge_seg = layer[index.receivers] + (index.edge_graph * max_layers if per_graph else 0)
  node_seg = layer + (index.node_graph * max_layers if per_graph else 0)
  w = jnp.asarray(graphs.edges['weight'])
  wm = jnp.asarray(graphs.edges['mask'], w.dtype)
  p = jnp.asarray(graphs.nodes['param'])
  pm = jnp.asarray(graphs.nodes['param_mask'], p.dtype)
  sums = lambda values, seg: tuple(jax.ops.segment_sum(v, seg, n_seg) for v in values)
  return (sums((wm.sum(1), (w * wm).sum(1), (w * w * wm).sum(1)), edge_seg),
          sums((pm, p * pm, p * p * pm), node_seg))


def _mean_std(count, first, second, xp=jnp):
  mean = first / xp.maximum(count, 1)
  std = xp.sqrt(xp.maximum(second / xp.maximum(count, 1) - mean * mean, 0))
  return mean, xp.where(std > 1e-6, std, 1.0)


def _layer_moments(graphs: jraph.GraphsTuple, index: GraphIndex, max_layers: int,
                   per_graph: bool) -> LayerStatistics:
  edge_sums, node_sums = _layer_sums(graphs, index, max_layers, per_graph)
  e_mean, e_std = _mean_std(*edge_sums)
  n_mean, n_std = _mean_std(*node_sums)
  if per_graph:
    shape = (index.n_graph, max_layers)
    return LayerStatistics(e_mean.reshape(shape), e_std.reshape(shape),
                           n_mean.reshape(shape + (-1,)), n_std.reshape(shape + (-1,)))
  return LayerStatistics(e_mean, e_std, n_mean, n_std)


def fit_layer_statistics(graphs: jraph.GraphsTuple | Sequence[jraph.GraphsTuple],
                         max_layers: int = 64, chunk: int = 64) -> LayerStatistics:
  """Per-layer mean and standard deviation of weights and node parameters over a data set.

  Host-side (returns float32 numpy arrays; standard deviations of constant layers are 1).
  Layers are the `layer` index of the receiving neuron, so use it on graphs of one
  architecture, or of architectures whose layers correspond. A list is summed `chunk` graphs
  at a time and the sums are added in float64, so that millions of values keep float32
  accuracy.

  Args:
    graphs: a batch (e.g. from `batch`) or a list of graphs from `pg.encode`.
    max_layers: layers at or beyond this share the last statistics.
    chunk: graphs per compiled sum when `graphs` is a list.

  Returns:
    `LayerStatistics` with `edge_*` `[max_layers]` and `node_*` `[max_layers, P]`.
  """
  from gmn_jax.metanets.batching import batch  # pylint: disable=g-import-not-at-top
  if isinstance(graphs, jraph.GraphsTuple):
    chunks = [graphs]
  else:
    graphs = list(graphs)
    chunks = [batch(graphs[k:k + chunk]) for k in range(0, len(graphs), chunk)]
  layer_sums = jax.jit(lambda g: _layer_sums(g, graph_index(g), max_layers, per_graph=False))
  edge, node = [0.0] * 3, [np.zeros((max_layers, 0))] * 3
  for part in chunks:
    e, n = jax.device_get(layer_sums(part))
    edge = [a + np.asarray(b, np.float64) for a, b in zip(edge, e)]
    width = max(node[0].shape[1], n[0].shape[1])
    pad = lambda a: np.pad(np.asarray(a, np.float64), ((0, 0), (0, width - a.shape[1])))
    node = [pad(a) + pad(b) for a, b in zip(node, n)]
  e_mean, e_std = _mean_std(*edge, xp=np)
  n_mean, n_std = _mean_std(*node, xp=np)
  return LayerStatistics(*(a.astype(np.float32) for a in (e_mean, e_std, n_mean, n_std)))


def standardize_per_layer(graphs: jraph.GraphsTuple, statistics: LayerStatistics | None = None,
                          max_layers: int = 64) -> jraph.GraphsTuple:
  """Standardises `edges['weight']` and `nodes['param']` per layer. Jittable.

  Args:
    graphs: a (batched) parameter graph.
    statistics: data-set statistics from `fit_layer_statistics`; None: each graph is
      standardised with its own per-layer statistics (no information crosses graphs).
    max_layers: as in `fit_layer_statistics` (must match `statistics` when given).

  Returns:
    The graphs with `(value - mean) / std` in used slots and zeros in masked ones.
  """
  index = graph_index(graphs)
  per_graph = statistics is None
  if per_graph:
    statistics = _layer_moments(graphs, index, max_layers, per_graph=True)
  layer = jnp.clip(jnp.asarray(graphs.nodes['layer']), 0, max_layers - 1)
  w = jnp.asarray(graphs.edges['weight'])
  p = jnp.asarray(graphs.nodes['param'])
  edge_layer = layer[index.receivers]
  if per_graph:
    e_mean = statistics.edge_mean[index.edge_graph, edge_layer]
    e_std = statistics.edge_std[index.edge_graph, edge_layer]
    n_mean = statistics.node_mean[index.node_graph, layer]
    n_std = statistics.node_std[index.node_graph, layer]
  else:
    e_mean = jnp.asarray(statistics.edge_mean)[edge_layer]
    e_std = jnp.asarray(statistics.edge_std)[edge_layer]
    width = p.shape[1]
    node_mean = jnp.asarray(statistics.node_mean)
    node_std = jnp.asarray(statistics.node_std)
    if node_mean.shape[1] < width:
      extra = width - node_mean.shape[1]
      node_mean = jnp.pad(node_mean, ((0, 0), (0, extra)))
      node_std = jnp.pad(node_std, ((0, 0), (0, extra)), constant_values=1.0)
    n_mean, n_std = node_mean[layer, :width], node_std[layer, :width]
  wm = jnp.asarray(graphs.edges['mask'], w.dtype)
  pm = jnp.asarray(graphs.nodes['param_mask'], p.dtype)
  w = (w - e_mean[:, None]) / e_std[:, None] * wm
  p = (p - n_mean) / n_std * pm
  return graphs._replace(edges={**graphs.edges, 'weight': w}, nodes={**graphs.nodes, 'param': p})


def standardize(graphs: jraph.GraphsTuple, per_graph: bool,
                statistics: LayerStatistics | None, max_layers: int = 64) -> jraph.GraphsTuple:
  """The metanetworks' input standardisation: per graph and layer (`per_graph`), with data-set
  `statistics`, or none (neither). Jittable.

  Raises:
    ValueError: both asked for.
  """
  if per_graph and statistics is not None:
    raise ValueError('normalize_weights=True standardises each graph with its own statistics '
                     'and layer_statistics with the data set\'s: choose one')
  if per_graph or statistics is not None:
    return standardize_per_layer(graphs, statistics, max_layers)
  return graphs

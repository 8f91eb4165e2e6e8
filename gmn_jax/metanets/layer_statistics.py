"""Per-layer standardisation of parameter values: from raw weights to weights of unit scale.

Neural graphs normalise each layer with data-set statistics; without it a permutation-only GMN
stays at chance on SIREN INRs (weights ~0.01 after the first layer, ~1 in it).
`fit_layer_statistics` (host-side) computes the data-set statistics and `standardize_per_layer`
(jittable) applies them, or per-graph statistics when none are given; the metanetworks'
`normalize_weights=True` calls it per graph inside the model (`features.GraphEncoder`).
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


def _layer_moments(graphs: jraph.GraphsTuple, index: GraphIndex, max_layers: int,
                   per_graph: bool) -> LayerStatistics:
  layer = jnp.clip(jnp.asarray(graphs.nodes['layer']), 0, max_layers - 1)
  n_seg = max_layers * (index.n_graph if per_graph else 1)
  edge_seg = layer[index.receivers] + (index.edge_graph * max_layers if per_graph else 0)
  node_seg = layer + (index.node_graph * max_layers if per_graph else 0)
  w = jnp.asarray(graphs.edges['weight'])
  wm = jnp.asarray(graphs.edges['mask'], w.dtype)
  p = jnp.asarray(graphs.nodes['param'])
  pm = jnp.asarray(graphs.nodes['param_mask'], p.dtype)

  def moments(values, seg):
    count = jax.ops.segment_sum(values[0], seg, n_seg)
    first = jax.ops.segment_sum(values[1], seg, n_seg)
    second = jax.ops.segment_sum(values[2], seg, n_seg)
    mean = first / jnp.maximum(count, 1)
    var = jax.nn.relu(second / jnp.maximum(count, 1) - mean * mean)
    std = jnp.sqrt(var)
    return mean, jnp.where(std > 1e-6, std, 1.0)

  e_mean, e_std = moments(((wm).sum(1), (w * wm).sum(1), (w * w * wm).sum(1)), edge_seg)
  n_mean, n_std = moments((pm, p * pm, p * p * pm), node_seg)
  if per_graph:
    shape = (index.n_graph, max_layers)
    return LayerStatistics(e_mean.reshape(shape), e_std.reshape(shape),
                           n_mean.reshape(shape + (-1,)), n_std.reshape(shape + (-1,)))
  return LayerStatistics(e_mean, e_std, n_mean, n_std)


def fit_layer_statistics(graphs: jraph.GraphsTuple | Sequence[jraph.GraphsTuple],
                         max_layers: int = 64) -> LayerStatistics:
  """Per-layer mean and standard deviation of weights and node parameters over a data set.

  Host-side (returns numpy arrays). Layers are the `layer` index of the receiving neuron, so
  use it on graphs of one architecture, or of architectures whose layers correspond.

  Args:
    graphs: a batch (e.g. from `batch`) or a list of graphs from `pg.encode`.
    max_layers: layers at or beyond this share the last statistics.

  Returns:
    `LayerStatistics` with `edge_*` `[max_layers]` and `node_*` `[max_layers, P]`.
  """
  if not isinstance(graphs, jraph.GraphsTuple):
    from gmn_jax.metanets.batching import batch  # pylint: disable=g-import-not-at-top
    graphs = batch(list(graphs))
  moments = jax.jit(lambda g: _layer_moments(g, graph_index(g), max_layers, per_graph=False))
  return LayerStatistics(*(np.asarray(a) for a in moments(graphs)))


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

"""Baselines on the same data path as the metanetworks (`jraph.GraphsTuple` in and out).

- `StatNN` (Unterthiner et al. 2020): per-layer statistics of the weights and of the
  per-neuron parameters (mean, variance and the 0, 25, 50, 75, 100% quantiles) into an MLP.
  Invariant to every neuron permutation, symmetry or not.
- `WeightMLP`: an MLP on the flattened parameters of one architecture, in the template's
  edge and node order (DWSNets' flat-weight baseline, Navon et al. 2023). Not invariant to
  anything; it refuses graphs of another architecture.

`StatNN` and `WeightMLP` optionally standardise their inputs (the statistics, the flat
vector) entry by entry with a training set's mean and standard deviation (`input_mean`,
`input_std`; `standardization` computes them), as DWSNets standardises every parameter
position by its training-set statistics before its MLP.
- `EdgeDeepSets`: DeepSets (Zaheer et al. 2017) over the set of edges (and of neurons with
  parameters): each element is encoded on its own (`GraphEncoder`), transformed by an MLP,
  averaged per graph and read out. Blind to which neuron an edge connects.

All jittable. Their output graphs carry `globals` `[n_graph, out_features]`; `EdgeDeepSets`
also gives per-parameter outputs through `Readout`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.metanets import aggregation as agg_ops
from gmn_jax.metanets.batching import graph_index, graph_mask
from gmn_jax.metanets.metanetwork import Metanetwork
from gmn_jax.metanets.readout import MLP

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


def standardization(x: np.ndarray, floor: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
  """Per-column mean and standard deviation of `x` `[n, d]` (float32, `[d]` each), for a
  model's `input_mean` / `input_std`. Columns whose deviation is below `floor` (constant
  inputs, e.g. padding slots) get 1, so they become 0 and stay finite. Host-side."""
  x = np.asarray(x, np.float64)
  std = x.std(axis=0)
  return (x.mean(axis=0).astype(np.float32),
          np.where(std < floor, 1.0, std).astype(np.float32))


def _standardize(x: jax.Array, mean, std) -> jax.Array:
  if mean is None:
    return x
  return (x - jnp.asarray(mean, x.dtype)) / jnp.asarray(std, x.dtype)


def segment_statistics(values: jax.Array, segment_ids: jax.Array, num_segments: int,
                       quantiles: Sequence[float] = QUANTILES) -> jax.Array:
  """Mean, variance and quantiles of scalar `values` `[M]` per segment. Jittable.

  Quantiles interpolate linearly between order statistics (numpy's default). Entries with a
  segment id >= `num_segments` are ignored; empty segments give zeros.

  Returns:
    `[num_segments, 2 + len(quantiles)]`.
  """
  count = agg_ops.segment_count(segment_ids, num_segments, values.dtype)
  mean = agg_ops.segment_mean(values, segment_ids, num_segments, count)
  var = jax.nn.relu(agg_ops.segment_mean(values * values, segment_ids, num_segments, count)
                    - mean * mean)
  # Sort by (segment, value); each segment's values are then contiguous and ascending.
  seg_sorted, val_sorted = jax.lax.sort((segment_ids, values), num_keys=2)
  del seg_sorted
  starts = jnp.cumsum(count) - count
  out = [mean, var]
  last = max(values.shape[0] - 1, 0)
  for q in quantiles:
    pos = starts + q * jnp.maximum(count - 1, 0)
    lo = jnp.clip(jnp.floor(pos).astype(jnp.int32), 0, last)
    hi = jnp.clip(jnp.ceil(pos).astype(jnp.int32), 0, last)
    frac = pos - jnp.floor(pos)
    value = val_sorted[lo] * (1 - frac) + val_sorted[hi] * frac if values.shape[0] else count
    out.append(jnp.where(count > 0, value, 0))
  return jnp.stack(out, axis=-1)


class StatNN(nn.Module):
  """StatNN (Unterthiner et al. 2020): per-layer parameter statistics into an MLP.

  Features per graph: for each layer (the receiving neuron's `layer`, clipped to
  `max_layers - 1`) the statistics of its weights, and for each layer and per-neuron parameter
  slot (bias, norm scale, ..., the first `max_param_slots`) the statistics of those values;
  `segment_statistics` gives mean, variance and five quantiles. An MLP reads the flattened
  features.

  Attributes:
    out_features: width of `globals`.
    hidden: MLP widths.
    max_layers: layers kept apart.
    max_param_slots: per-neuron parameter slots kept apart.
    activation: of the MLP.
    input_mean, input_std: `[n_features]` arrays: the features are standardised with them
      before the MLP (None: read raw).
  """

  out_features: int = 1
  hidden: Sequence[int] = (256, 256)
  max_layers: int = 16
  max_param_slots: int = 4
  activation: Callable = nn.relu
  input_mean: Any = None
  input_std: Any = None

  def features(self, graphs: jraph.GraphsTuple) -> jax.Array:
    """`[n_graph, n_features]` statistics (before the MLP)."""
    index = graph_index(graphs)
    layer = jnp.clip(jnp.asarray(graphs.nodes['layer']), 0, self.max_layers - 1)
    w = jnp.asarray(graphs.edges['weight'])
    n_w_seg = index.n_graph * self.max_layers
    w_seg = index.edge_graph * self.max_layers + layer[index.receivers]
    w_seg = jnp.where(jnp.asarray(graphs.edges['mask']), w_seg[:, None], n_w_seg)
    w_stats = segment_statistics(w.ravel(), w_seg.ravel(), n_w_seg)
    p = jnp.asarray(graphs.nodes['param'])[:, :self.max_param_slots]
    pm = jnp.asarray(graphs.nodes['param_mask'])[:, :self.max_param_slots]
    slots = p.shape[1]
    n_p_seg = index.n_graph * self.max_layers * self.max_param_slots
    p_seg = ((index.node_graph * self.max_layers + layer)[:, None] * self.max_param_slots
             + jnp.arange(slots)[None])
    p_seg = jnp.where(pm, p_seg, n_p_seg)
    p_stats = segment_statistics(p.ravel(), p_seg.ravel(), n_p_seg)
    return jnp.concatenate([w_stats.reshape(index.n_graph, -1),
                            p_stats.reshape(index.n_graph, -1)], axis=-1)

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    x = _standardize(self.features(graphs), self.input_mean, self.input_std)
    out = MLP(tuple(self.hidden) + (self.out_features,), self.activation)(x)
    return graphs._replace(globals=out)


class WeightMLP(nn.Module):
  """An MLP on the flattened parameters of one architecture (not permutation invariant).

  Each graph's `edges['weight']` `[n_edge, K]` and `nodes['param']` `[n_node, P]` are read in
  the template's order and flattened. Every real graph of a batch must have the one
  architecture the module is for: `n_node` nodes, `n_edge` edges, and the K and P its
  parameters were initialised with. Given another architecture it raises a ValueError
  (outside jit; under jit, where graph sizes are traced, that graph's output is NaN).

  Attributes:
    n_node: nodes per graph of the architecture (None: the first graph's, which needs
      concrete, non-traced graph sizes; use `WeightMLP.for_architecture` under jit).
    n_edge: edges per graph (None: as `n_node`).
    out_features: width of `globals`.
    hidden: MLP widths.
    activation: of the MLP.
    input_mean, input_std: `[n_edge * K + n_node * P]` arrays: the flattened parameters are
      standardised with them, entry by entry (None: read raw). `flat_parameters` gives the
      vectors to compute them from.
  """

  n_node: int | None = None
  n_edge: int | None = None
  out_features: int = 1
  hidden: Sequence[int] = (256, 256)
  activation: Callable = nn.relu
  input_mean: Any = None
  input_std: Any = None

  @classmethod
  def for_architecture(cls, template, **kwargs) -> 'WeightMLP':
    """A WeightMLP for the architecture of `template` (a ParameterGraph)."""
    return cls(n_node=template.n_node, n_edge=template.n_edge, **kwargs)

  def _sizes(self, graphs: jraph.GraphsTuple) -> tuple[int, int]:
    if self.n_node is not None and self.n_edge is not None:
      return self.n_node, self.n_edge
    try:
      return int(graphs.n_node[0]), int(graphs.n_edge[0])
    except jax.errors.ConcretizationTypeError as err:
      raise ValueError('WeightMLP needs n_node and n_edge under jit: build it with '
                       'WeightMLP.for_architecture(pg) or pass them.') from err

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    index = graph_index(graphs)
    n_node, n_edge = self._sizes(graphs)
    real = graph_mask(graphs)
    matches = (jnp.asarray(graphs.n_node) == n_node) & (jnp.asarray(graphs.n_edge) == n_edge)
    other = ('Use StatNN, EdgeDeepSets or a graph metanetwork (GMN, NGGNN, NGT) for several '
            'architectures.')
    if not isinstance(matches, jax.core.Tracer):
      bad = np.flatnonzero(np.asarray(real & ~matches))
      if bad.size:
        g = int(bad[0])
        raise ValueError(
            f'WeightMLP reads one architecture only ({n_node} nodes, {n_edge} edges per '
            f'graph), but graph {g} of the batch has {int(graphs.n_node[g])} nodes and '
            f'{int(graphs.n_edge[g])} edges. {other}')
    w = jnp.asarray(graphs.edges['weight'])
    p = jnp.asarray(graphs.nodes['param'])
    width = n_edge * w.shape[1] + n_node * p.shape[1]
    if self.has_variable('params', 'input_kernel'):
      have = self.get_variable('params', 'input_kernel').shape[0]
      if have != width:
        raise ValueError(
            f'WeightMLP was initialised for an architecture with {have} flattened values per '
            f'graph; these graphs have {width} (K={w.shape[1]}, P={p.shape[1]}). {other}')
    node_start = jnp.cumsum(graphs.n_node) - graphs.n_node
    edge_start = jnp.cumsum(graphs.n_edge) - graphs.n_edge
    local_e = jnp.arange(index.n_edge) - edge_start[index.edge_graph]
    local_n = jnp.arange(index.n_node) - node_start[index.node_graph]
    flat_w = jnp.zeros((index.n_graph, n_edge, w.shape[1]), w.dtype).at[
        index.edge_graph, local_e].set(w, mode='drop')
    flat_p = jnp.zeros((index.n_graph, n_node, p.shape[1]), p.dtype).at[
        index.node_graph, local_n].set(p, mode='drop')
    flat = jnp.concatenate([flat_w.reshape(index.n_graph, -1),
                            flat_p.reshape(index.n_graph, -1)], axis=-1)
    flat = _standardize(flat, self.input_mean, self.input_std)
    hidden = tuple(self.hidden)
    kernel = self.param('input_kernel', nn.initializers.lecun_normal(), (width, hidden[0]))
    bias = self.param('input_bias', nn.initializers.zeros, (hidden[0],))
    x = self.activation(flat @ kernel + bias)
    out = MLP(hidden[1:] + (self.out_features,), self.activation, name='mlp')(x)
    out = jnp.where((real & ~matches)[:, None], jnp.nan, out)
    return graphs._replace(globals=out)


def flat_parameters(stacked: jraph.GraphsTuple) -> np.ndarray:
  """`[n, n_edge * K + n_node * P]`: graphs of one architecture stacked on a leading axis
  (as `jax.vmap(pg.encode)` gives them) flattened in `WeightMLP`'s order. Host-side."""
  w = np.asarray(stacked.edges['weight'])
  p = np.asarray(stacked.nodes['param'])
  return np.concatenate([w.reshape(len(w), -1), p.reshape(len(p), -1)], axis=-1)


class EdgeDeepSets(Metanetwork):
  """DeepSets over a network's parameters: every edge (and every neuron's parameter vector)
  is encoded and transformed on its own, then averaged per graph.

  Attributes:
    hidden_dim: element vector width.
    num_layers: layers of the per-element MLP.
    The readout, activation and value-encoding settings: see `Metanetwork`.
  """

  hidden_dim: int = 64
  num_layers: int = 2

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    index = graph_index(graphs)
    v, e = self.encode(graphs, index, self.hidden_dim, self.hidden_dim)
    widths = (self.hidden_dim,) * self.num_layers
    e = MLP(widths, self.activation, name='edge_phi')(self.activation(e))
    v = MLP(widths, self.activation, name='node_phi')(self.activation(v))
    return self.readout(graphs, index, v, e)

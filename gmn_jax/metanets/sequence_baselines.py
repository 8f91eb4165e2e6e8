"""The GMN paper's baselines for diverse architectures (Lim et al. 2024, Table 1), on the same
data path as the metanetworks (`jraph.GraphsTuple` in and out), read from the graph's slots.

- `DMC` (Eilertsen et al. 2020, "Classifying the classifier: dissecting the weight space of
  neural networks"): the network's whole parameter vector as a sequence, zero-padded to the
  longest network, through Conv1d-ReLU-MaxPool blocks (kernel 5, channels doubling), a mean
  over positions and an MLP. Sees parameter order, so it is not permutation invariant.
- `ParameterDeepSets`: DeepSets (Zaheer et al. 2017) over the set of every scalar parameter:
  each value through an MLP on its own, a mean per network, an MLP. No position, layer or type
  information, as the GMN paper's DeepSets baseline. (`EdgeDeepSets` is a stronger variant that
  encodes each edge with its layer and type; it is not the paper's baseline.) Departure: the
  pooled vector may be standardised with training-set statistics (`pooled_statistics`), a
  fixed affine map before the readout MLP; the mean over thousands of values otherwise barely
  varies between networks and the readout learns slowly.

The sequence of a graph is every real weight slot of its edges in edge order (each edge's
kernel entries in order), then every real per-neuron parameter slot (biases, norm scales and
shifts, running statistics) in node order: every parameter scalar once, in the template's
order, which follows the traced program (layer order). Masked slots are skipped, not zeros.

Both read each value through the metanetworks' value features by default (the value, and
sines and cosines of it at octave frequencies, `features.value_encoding`): the GMN reads
weights that way, and a single linear map of raw values that span orders of magnitude learns
slowly. Departures from the paper's DMC: no normalisation inside the blocks where it had
BatchNorm (the training step keeps no mutable state; LayerNorm over the channels of each
position, `norm='layer'`, divides out the scale of the values it reads; in the diverse
run's 8 epochs it stayed near the family means), and biases follow all weights instead of
each layer's weights.

Both jittable; their output graphs carry `globals` `[n_graph, out_features]`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.metanets.batching import graph_index
from gmn_jax.metanets.features import value_encoding, value_frequencies
from gmn_jax.metanets.readout import MLP

NORMS = ('layer', 'none')


def parameter_sequence(graphs: jraph.GraphsTuple, max_length: int
                       ) -> tuple[jax.Array, jax.Array]:
  """Each graph's parameters as one zero-padded sequence. Jittable.

  Args:
    graphs: a (padded) batch with `edges['weight']`/`edges['mask']` `[n_edge, K]` and
      `nodes['param']`/`nodes['param_mask']` `[n_node, P]`.
    max_length: L, the sequence length; a graph with more parameters is cut at L.

  Returns:
    `values` `[n_graph, L]` and `mask` bool `[n_graph, L]` (True at real parameters).
  """
  index = graph_index(graphs)
  w = jnp.asarray(graphs.edges['weight'])
  wm = jnp.asarray(graphs.edges['mask']).astype(jnp.int32)
  p = jnp.asarray(graphs.nodes['param'])
  pm = jnp.asarray(graphs.nodes['param_mask']).astype(jnp.int32)
  w_graph = jnp.repeat(index.edge_graph, w.shape[1], total_repeat_length=w.size)
  p_graph = jnp.repeat(index.node_graph, p.shape[1], total_repeat_length=p.size)
  wm, pm = wm.reshape(-1), pm.reshape(-1)
  w_count = jax.ops.segment_sum(wm, w_graph, index.n_graph)
  p_count = jax.ops.segment_sum(pm, p_graph, index.n_graph)

  def positions(mask, graph, count, offset):
    before = jnp.cumsum(mask) - mask  # real slots before this one, over the whole batch
    start = jnp.cumsum(count) - count
    pos = offset[graph] + before - start[graph]
    return jnp.where(mask > 0, pos, max_length)  # masked slots are dropped by the scatter

  w_pos = positions(wm, w_graph, w_count, jnp.zeros_like(w_count))
  p_pos = positions(pm, p_graph, p_count, w_count)
  values = jnp.zeros((index.n_graph, max_length), w.dtype)
  values = values.at[w_graph, w_pos].set(w.reshape(-1), mode='drop')
  values = values.at[p_graph, p_pos].set(p.reshape(-1), mode='drop')
  mask = jnp.arange(max_length)[None] < (w_count + p_count)[:, None]
  return values, mask


def encode_values(values: jax.Array, kind: str, n_frequencies: int, scale: float
                  ) -> jax.Array:
  """`[..., C]` per-value features: the value alone (`kind='linear'`, C = 1) or with the
  metanetworks' sinusoidal or Fourier features (`features.value_encoding`). Jittable."""
  return value_encoding(values, value_frequencies(kind, n_frequencies, scale))


class DMC(nn.Module):
  """DMC (Eilertsen et al. 2020) over each network's parameter sequence.

  Attributes:
    max_length: sequence length L (the longest network's parameter count; longer ones are cut).
    channels: Conv1d channels per block (each block: conv, ReLU, `norm`, max-pool by 2).
    kernel: convolution kernel length.
    hidden: widths of the MLP after the mean over positions.
    out_features: width of `globals`.
    activation: of the MLP.
    norm: of each block: 'none' or 'layer' (LayerNorm over each position's channels, which
      makes the first block blind to the scale of its input while its biases are small).
    value_features, n_frequencies, value_scale: each value's input channels
      (`encode_values`; `'linear'`: the raw value alone, one channel).
  """

  max_length: int
  channels: Sequence[int] = (8, 16, 32, 64)
  kernel: int = 5
  hidden: Sequence[int] = (64,)
  out_features: int = 1
  activation: Callable = nn.relu
  norm: str = 'none'
  value_features: str = 'sinusoidal'
  n_frequencies: int = 12
  value_scale: float = 1.0

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    if self.norm not in NORMS:
      raise ValueError(f'norm must be one of {NORMS}, not {self.norm!r}')
    values, mask = parameter_sequence(graphs, self.max_length)
    x = encode_values(values, self.value_features, self.n_frequencies, self.value_scale)
    m = mask.astype(values.dtype)[..., None]
    x = x * m
    for c in self.channels:
      x = nn.relu(nn.Conv(c, (self.kernel,), padding='SAME')(x)) * m
      if self.norm == 'layer':
        x = nn.LayerNorm()(x) * m
      if x.shape[1] >= 2:
        x = nn.max_pool(x, (2,), strides=(2,), padding='SAME')
        m = nn.max_pool(m, (2,), strides=(2,), padding='SAME')
    pooled = jnp.sum(x * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
    out = MLP(tuple(self.hidden) + (self.out_features,), self.activation)(pooled)
    return graphs._replace(globals=out)


class ParameterDeepSets(nn.Module):
  """DeepSets over every scalar parameter of each network (no position information).

  The values are gathered into each network's parameter sequence first (`parameter_sequence`),
  so the per-value MLP runs on `n_graph * max_length` values, not on every padded slot of the
  batch (a batch padded for the widest MLP input holds tens of times more slots than values).

  Attributes:
    max_length: the longest network's parameter count (values beyond it are not seen).
    hidden: width of the per-value MLP (two layers) and of the readout MLP.
    out_features: width of `globals`.
    activation: of both MLPs.
    value_features, n_frequencies, value_scale: each value's input features
      (`encode_values`).
    pooled_mean, pooled_std: `[hidden]` per-feature statistics the pooled vector is
      standardised with before `rho` (`pooled_statistics` fits them on training networks);
      None: read raw.
  """

  max_length: int
  hidden: int = 64
  out_features: int = 1
  activation: Callable = nn.relu
  value_features: str = 'sinusoidal'
  n_frequencies: int = 12
  value_scale: float = 1.0
  pooled_mean: Any = None
  pooled_std: Any = None

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    values, mask = parameter_sequence(graphs, self.max_length)
    x = encode_values(values, self.value_features, self.n_frequencies, self.value_scale)
    phi = MLP((self.hidden, self.hidden), self.activation, name='phi')(x)
    m = mask.astype(phi.dtype)[..., None]
    pooled = jnp.sum(phi * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)
    if self.pooled_mean is not None:
      pooled = ((pooled - jnp.asarray(self.pooled_mean, pooled.dtype))
                / jnp.asarray(self.pooled_std, pooled.dtype))
    out = MLP((self.hidden, self.out_features), self.activation, name='rho')(pooled)
    return graphs._replace(globals=out)


def pooled_statistics(model: ParameterDeepSets, params: Any,
                      batches: Iterable[tuple[jraph.GraphsTuple, np.ndarray]],
                      min_std: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
  """Per-feature mean and standard deviation of `model`'s pooled vector (the input of `rho`,
  before any standardisation) with `params` over the real graphs of `batches` (`(graphs,
  mask)` pairs), for `pooled_mean` / `pooled_std`. Host-side driver (one compiled forward
  pass).

  A mean over thousands of values barely varies between networks (at initialisation most
  features spread ~1e-3 to 1e-1), so `rho` reads near-constant inputs and learns slowly; these
  statistics put the spread at unit scale. No feature is scaled up by more than
  `1 / min_std`: dividing by a spread of 1e-4 would turn the first steps' changes of `phi`
  into outputs of thousands.
  """
  raw = model.clone(pooled_mean=None, pooled_std=None)

  def pooled(p, graphs):
    box = []

    def intercept(f, args, kwargs, context):
      if context.module.name == 'rho' and context.method_name == '__call__':
        box.append(args[0])
      return f(*args, **kwargs)
    with nn.intercept_methods(intercept):
      raw.apply(p, graphs)
    return box[0]
  fn = jax.jit(pooled)
  values = np.concatenate([np.asarray(fn(params, g))[np.asarray(m, bool)] for g, m in batches])
  return (values.mean(0).astype(np.float32),
          np.maximum(values.std(0), min_std).astype(np.float32))

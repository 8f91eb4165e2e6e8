"""Feature encoders: from a parameter graph's raw fields to node and edge vectors.

Follows the reference encoders of both papers: parameter values go through sinusoidal
features (weights span orders of magnitude, which a single linear map reads poorly), types,
layer indices and operations through embeddings, and input/output neurons get one learned
embedding per position while hidden neurons get none (Kofinas et al. 2024, Sec. 3; Lim et al.
2024, App. C). A convolution kernel is a masked vector of K slots: each slot's features go
through their own linear map and the maps are summed over the slots that hold a parameter,
which is a linear map of the flattened, zero-padded kernel (neural graphs) that also accepts
narrower kernels.

Where it departs: the default value features are octave frequencies (`'sinusoidal'`);
`value_features='fourier'` with `value_scale=3` (GMN, NG-GNN) or `1` (NG-T) gives the
published Gaussian random Fourier features. Both use `sin_turns`, a polynomial sine, since
XLA's `sin` on CPU would cost more than the rest of the encoder.

Optionally weights are standardised per layer first, inside the model: with data-set
statistics (`layer_statistics=fit_layer_statistics(training graphs).frozen()`, as neural
graphs does), which keeps each network's scale of each layer relative to the data set, or per
graph (`normalize_weights=True`), which divides it out (and zeroes a layer holding a single
value, such as an INR's output bias).

Everything here is jittable except `mean_log_degree` (host-side: it returns a float).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.metanets import aggregation
from gmn_jax.graphs.architecture import NodeType
from gmn_jax.metanets.batching import GraphIndex, graph_index
from gmn_jax.metanets.layer_statistics import LayerStatistics, standardize

VALUE_FEATURES = ('sinusoidal', 'fourier', 'linear')


def value_frequencies(kind: str, n_frequencies: int, scale: float, seed: int = 0) -> np.ndarray:
  """Frequencies of the value features, fixed at construction (numpy, host-side).

  Args:
    kind: `'sinusoidal'`: octaves `scale * 2 ** (k - n_frequencies // 2)`, so that both tiny
      and large weights are resolved (as positional encodings); `'fourier'`: Gaussian random
      frequencies with standard deviation `scale` (the random Fourier features of both
      papers); `'linear'`: none.
    n_frequencies: how many.
    scale: see `kind`.
    seed: the numpy seed of the random frequencies.

  Returns:
    `[n_frequencies]` float32 (empty for `'linear'`).
  """
  if kind == 'fourier':
    return (np.random.default_rng(seed).normal(size=n_frequencies) * scale).astype(np.float32)
  if kind == 'sinusoidal':
    return (scale * 2.0 ** (np.arange(n_frequencies) - n_frequencies // 2)).astype(np.float32)
  if kind == 'linear':
    return np.zeros(0, np.float32)
  raise ValueError(f'unknown value features {kind!r}; choose from {VALUE_FEATURES}')


def sin_turns(turns: jax.Array) -> jax.Array:
  """`sin(2 pi turns)` from multiplies and adds only (error ~2e-7 in float32). Jittable.

  XLA's `sin` on CPU costs several nanoseconds per element, more than the rest of a
  metanetwork's input encoding together; this polynomial vectorises and fuses with its
  neighbours. Range reduction to a quarter turn, then the Taylor series to the 11th power.
  """
  r = turns - jnp.round(turns)  # [-1/2, 1/2]
  r = jnp.where(r > 0.25, 0.5 - r, jnp.where(r < -0.25, -0.5 - r, r))  # [-1/4, 1/4]
  y = (2 * np.pi) * r
  y2 = y * y
  poly = -1 / 39916800
  for c in (1 / 362880, -1 / 5040, 1 / 120, -1 / 6, 1.0):
    poly = poly * y2 + c
  return y * poly


def value_encoding(values: jax.Array, frequencies: np.ndarray) -> jax.Array:
  """`[..., 1 + 2F]`: the value itself, then `sin` and `cos` of `2 pi f value`. Jittable."""
  values = values[..., None]
  if frequencies.size == 0:
    return values
  turns = values * jnp.asarray(frequencies, values.dtype)
  return jnp.concatenate([values, sin_turns(turns), sin_turns(turns + 0.25)], axis=-1)


def _slot_param(module: nn.Module, name: str, n_slots: int, rest: tuple[int, ...], init,
                min_slots: int):
  """A parameter `[S, *rest]` with S fixed at init (the widest slot count seen then, or
  `min_slots`); later calls may use any S' <= S by slicing."""
  if module.has_variable('params', name):
    have = module.get_variable('params', name).shape[0]
    if n_slots > have:
      raise ValueError(
          f'{module.name or type(module).__name__}: the graphs have {n_slots} slots per '
          f'{"edge" if "edge" in (module.name or "") else "row"} (kernel positions or '
          f'per-neuron parameters), but the module was initialised with {have}. Initialise on '
          'a batch padded to the widest K and P of the data (batch(..., budget_for(...))) or '
          'set max_kernel_size / max_param_size.')
    shape = (have,) + rest
  else:
    shape = (max(n_slots, min_slots),) + rest
  return module.param(name, init, shape)


class SlotEncoder(nn.Module):
  """Masked slot values `[X, S]` to vectors `[X, features]`.

  Each slot's value features (`value_encoding`, plus a 1 that marks the slot as used) get a
  linear map of their own; maps of masked slots contribute nothing. Padding K or P wider
  (more masked slots) leaves the output unchanged.

  Implementation: the cosine features enter as `cos - 1`, which like the value and the sine
  vanishes for masked (zeroed) slots, so no feature needs masking but the slot marker; the
  constant goes to the marker's map. The per-slot angles `[X, S * F]` come from the values
  times a block-diagonal frequency matrix (as a sum of broadcasts, which fuses with the
  sines), not from a broadcast to `[X, S, F]` and a reshape, which on CPU would cost an
  integer division per element.

  Attributes:
    features: output width.
    value_features: `'sinusoidal'`, `'fourier'` or `'linear'` (see `value_frequencies`).
    n_frequencies: frequencies per value.
    scale: frequency scale.
    seed: numpy seed of the random frequencies.
    min_slots: the slot count S is fixed at init as max(S of the init graphs, min_slots).
  """

  features: int
  value_features: str = 'sinusoidal'
  n_frequencies: int = 12
  scale: float = 1.0
  seed: int = 0
  min_slots: int = 1

  @nn.compact
  def __call__(self, values: jax.Array, mask: jax.Array) -> jax.Array:
    n, s = values.shape
    freqs = value_frequencies(self.value_features, self.n_frequencies, self.scale, self.seed)
    f = freqs.size
    mask = jnp.asarray(mask, values.dtype)
    values = values * mask
    init = nn.initializers.variance_scaling(1.0, 'fan_in', 'truncated_normal',
                                            in_axis=(0, 1), out_axis=2)
    kernel = _slot_param(self, 'kernel', s, (2 * f + 2, self.features), init,
                         self.min_slots)[:s]
    out = values @ kernel[:, 0] + mask @ kernel[:, 1]
    if f:
      expand = np.kron(np.eye(s, dtype=np.float32), freqs[None, :])  # [S, S * F]
      if s <= 16:  # a sum of broadcasts fuses with the sines below; a matmul would not
        turns = sum(values[:, i:i + 1] * expand[i] for i in range(s))
      else:
        turns = jnp.matmul(values, jnp.asarray(expand, values.dtype),
                           precision=jax.lax.Precision.HIGHEST)
      out = out + sin_turns(turns) @ kernel[:, 2:2 + f].reshape(s * f, self.features)
      out = out + (sin_turns(turns + 0.25) - 1) @ kernel[:, 2 + f:].reshape(s * f,
                                                                           self.features)
    return out + self.param('bias', nn.initializers.zeros, (self.features,))


class SlotDecoder(nn.Module):
  """Vectors `[X, D]` to slot values `[X, S]` (per-edge kernels, per-neuron parameters).

  Attributes:
    min_slots: S is fixed at init as max(S asked for then, min_slots); later calls may ask
      for fewer.
    kernel_init: initialiser of the `[S, D]` kernel.
  """

  min_slots: int = 1
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array, n_slots: int) -> jax.Array:
    kernel = _slot_param(self, 'kernel', n_slots, (x.shape[-1],),
                         lambda key, shape: self.kernel_init(key, shape[::-1]).T,
                         self.min_slots)
    bias = _slot_param(self, 'bias', n_slots, (), nn.initializers.zeros, self.min_slots)
    return x @ kernel[:n_slots].T + bias[:n_slots]


def hash_ids(ids: jax.Array, table_size: int) -> jax.Array:
  """Operation or program ids into `[0, table_size)`, for an embedding table. Jittable.

  Accepts one id per row (`[X]`, e.g. `edges['op']` and `edges['act']`: 31-bit digests) or
  integer rows `[X, C]` (an operation spelt out as kind, groups, kernel, stride, ...), which
  are hashed into one id first.
  """
  ids = jnp.asarray(ids)
  if ids.ndim == 1:
    return (ids.astype(jnp.int32) % table_size).astype(jnp.int32)
  rows = ids.astype(jnp.int32).astype(jnp.uint32)
  h = jnp.zeros(rows.shape[:1], jnp.uint32)
  for c in range(rows.shape[1]):
    h = h * jnp.uint32(1000003) ^ rows[:, c]
  return (h % jnp.uint32(table_size)).astype(jnp.int32)


# ---- the encoder shared by every metanetwork ---------------------------------------------------


class GraphEncoder(nn.Module):
  """Initial node `[n_node, node_dim]` and edge `[n_edge, edge_dim]` vectors of a batch.

  Node vector: sum of embeddings of the node type, layer, position (one embedding per input
  position and per output position, one shared by all other neurons) and output program,
  the `SlotEncoder` of its parameters and, when the graphs carry them, of its probe values
  (`nodes['probe']`, from `pg.encode(..., probe_inputs)`). Edge vector: sum of embeddings of the edge type,
  receiver and sender layers, operation (`edges['op']`) and sender program (`edges['act']`),
  ids taken modulo `hash_size`, and the `SlotEncoder` of its weights. Only features that a
  symmetry maps onto themselves are used: no node index, no edge index.

  Attributes:
    node_dim: node vector width.
    edge_dim: edge vector width.
    value_features, n_frequencies, value_scale: see `SlotEncoder`.
    normalize_weights: standardise values per graph and layer first (`standardize_per_layer`).
    layer_statistics: data-set statistics (`LayerStatistics.frozen()`, fitted with this
      `max_layers`) to standardise values per layer with; None: none. Not with
      `normalize_weights`.
    max_layers: layer indices are clipped to `max_layers - 1`.
    max_positions: positions are taken modulo this (e.g. a large vocabulary).
    hash_size: table size for operation and program ids.
    max_kernel_size: K slots reserved at init (at least the init graphs' K).
    max_param_size: P slots reserved at init (at least the init graphs' P).
  """

  node_dim: int
  edge_dim: int
  value_features: str = 'sinusoidal'
  n_frequencies: int = 12
  value_scale: float = 1.0
  normalize_weights: bool = False
  layer_statistics: LayerStatistics | None = None
  max_layers: int = 64
  max_positions: int = 512
  hash_size: int = 1024
  max_kernel_size: int = 1
  max_param_size: int = 1

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple,
               index: GraphIndex) -> tuple[jax.Array, jax.Array]:
    graphs = standardize(graphs, self.normalize_weights, self.layer_statistics,
                         self.max_layers)
    nodes, edges = graphs.nodes, graphs.edges
    node_type = jnp.asarray(nodes['type'])
    layer = jnp.clip(jnp.asarray(nodes['layer']), 0, self.max_layers - 1)
    position = jnp.asarray(nodes['position']) % self.max_positions
    slot = jnp.where(node_type == int(NodeType.INPUT), 1 + position,
                     jnp.where(node_type == int(NodeType.OUTPUT),
                               1 + self.max_positions + position, 0))
    embed = lambda n, d, name: nn.Embed(n, d, name=name)
    v = (embed(16, self.node_dim, 'node_type')(node_type % 16)
         + embed(self.max_layers, self.node_dim, 'node_layer')(layer)
         + embed(2 * self.max_positions + 1, self.node_dim, 'node_position')(slot)
         + embed(self.hash_size, self.node_dim, 'node_act')(
             hash_ids(nodes['act'], self.hash_size)))
    slots = dict(value_features=self.value_features, n_frequencies=self.n_frequencies,
                 scale=self.value_scale)
    v = v + SlotEncoder(self.node_dim, min_slots=self.max_param_size, name='node_param',
                        **slots)(jnp.asarray(nodes['param']), nodes['param_mask'])
    if 'probe' in nodes:  # each probe input is a slot of its own
      v = v + SlotEncoder(self.node_dim, name='node_probe', **slots)(
          jnp.asarray(nodes['probe']), nodes['probe_mask'])
    e = (embed(16, self.edge_dim, 'edge_type')(jnp.asarray(edges['type']) % 16)
         + embed(self.max_layers, self.edge_dim, 'edge_receiver_layer')(layer[index.receivers])
         + embed(self.max_layers, self.edge_dim, 'edge_sender_layer')(layer[index.senders])
         + embed(self.hash_size, self.edge_dim, 'edge_op')(
             hash_ids(edges['op'], self.hash_size))
         + embed(self.hash_size, self.edge_dim, 'edge_act')(
             hash_ids(edges['act'], self.hash_size)))
    e = e + SlotEncoder(self.edge_dim, min_slots=self.max_kernel_size, name='edge_weight',
                        seed=1, **slots)(jnp.asarray(edges['weight']), edges['mask'])
    return v, e


def mean_log_degree(graphs: jraph.GraphsTuple, bidirectional: bool = True) -> float:
  """`mean(log(d + 1))` over the nodes of real graphs: the PNA degree normaliser. Host-side.

  Args:
    graphs: a batch of training graphs.
    bidirectional: count messages in both directions (as the metanetworks' default does).
  """
  from gmn_jax.metanets.batching import graph_mask  # pylint: disable=g-import-not-at-top

  @jax.jit
  def mean(graphs):
    index = graph_index(graphs)
    ids = (jnp.concatenate([index.receivers, index.senders]) if bidirectional
           else index.receivers)
    degree = aggregation.segment_count(ids, index.n_node)
    real = graph_mask(graphs)[index.node_graph]
    return jnp.sum(jnp.log(degree + 1) * real) / jnp.maximum(jnp.sum(real), 1)

  return float(mean(graphs))

"""Segment reductions for message passing over (padded) batches of parameter graphs.

Every function here is jittable: `num_segments` is a static Python int (in a metanetwork it
comes from an array's `.shape`, never from a sum of `n_node`). Empty segments (a neuron with
no incoming messages, a graph of the padding budget with no nodes) give zeros and finite
gradients, never `-inf` or NaN.

Messages come in *parts*: `(values [m, D], segment_ids [m] or None)`, e.g. messages along the
edges, messages against them, and a node's message to itself (ids None: one row per segment,
in order). Reducing the parts separately and combining the small per-segment results avoids
concatenating edge-sized arrays, which on CPU costs as much as the reductions themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

AGGREGATORS = ('sum', 'mean', 'max', 'min', 'std')
SCALERS = ('identity', 'amplification', 'attenuation')
# Principal Neighbourhood Aggregation (Corso et al. 2020) as the neural-graphs NG-GNN uses it.
PNA_AGGREGATORS = ('mean', 'min', 'max', 'std')
PNA_SCALERS = ('identity', 'amplification')

_STD_EPS = 1e-5

Part = tuple[jax.Array, jax.Array | None]


def gather(values: jax.Array, indices: jax.Array) -> jax.Array:
  """`values[indices]` along the first axis, for in-bounds indices (no fill masking)."""
  return jnp.take(values, indices, axis=0, mode='clip')


def _sum(values: jax.Array, ids: jax.Array | None, n: int) -> jax.Array:
  return values if ids is None else jax.ops.segment_sum(values, ids, n)


def _pick(values: jax.Array, ids: jax.Array | None) -> jax.Array:
  return values if ids is None else gather(values, ids)


def segment_count(segment_ids: jax.Array, num_segments: int,
                  dtype=jnp.float32) -> jax.Array:
  """How many entries each segment holds: `[num_segments]`."""
  return jax.ops.segment_sum(jnp.ones(segment_ids.shape, dtype), segment_ids, num_segments)


def segment_mean(data: jax.Array, segment_ids: jax.Array, num_segments: int,
                 count: jax.Array | None = None) -> jax.Array:
  """Mean of `data` `[M, ...]` per segment; zero for empty segments.

  Args:
    data: `[M, ...]` values.
    segment_ids: `[M]` int segment of each row (ids >= num_segments are dropped).
    num_segments: static number of segments.
    count: `[num_segments]` precomputed `segment_count`, if available.

  Returns:
    `[num_segments, ...]`.
  """
  total = jax.ops.segment_sum(data, segment_ids, num_segments)
  if count is None:
    count = segment_count(segment_ids, num_segments, total.dtype)
  count = jnp.maximum(count, 1).reshape((num_segments,) + (1,) * (data.ndim - 1))
  return total / count


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _segment_extremum(values, ids, n, is_max):
  reduce = jax.ops.segment_max if is_max else jax.ops.segment_min
  return reduce(values, ids, n)


def _segment_extremum_fwd(values, ids, n, is_max):
  out = _segment_extremum(values, ids, n, is_max)
  hit = values == gather(out, ids)
  ties = jax.ops.segment_sum(hit.astype(values.dtype), ids, n)
  return out, (hit, ties, ids)


def _segment_extremum_bwd(n, is_max, residuals, grad):
  del n, is_max
  hit, ties, ids = residuals
  # The gradient is shared by the entries that attain the extremum (ties split it evenly).
  share = gather(grad / jnp.maximum(ties, 1), ids)
  return jnp.where(hit, share, 0), None


_segment_extremum.defvjp(_segment_extremum_fwd, _segment_extremum_bwd)


def _extremum(parts: Sequence[Part], n: int, count: jax.Array, is_max: bool) -> jax.Array:
  """Max (or min) over parts; an identity-id part is itself. Zero for empty segments."""
  pick = jnp.maximum if is_max else jnp.minimum
  out = None
  for values, ids in parts:
    part = values if ids is None else _segment_extremum(values, ids, n, is_max)
    out = part if out is None else pick(out, part)
  return jnp.where((count > 0).reshape((n,) + (1,) * (out.ndim - 1)), out, 0)


def segment_max(data: jax.Array, segment_ids: jax.Array, num_segments: int,
                count: jax.Array | None = None) -> jax.Array:
  """Maximum per segment; zero (not `-inf`) for empty segments. Shapes as `segment_mean`.

  Its gradient goes to the entries that attain the maximum (split evenly between ties),
  computed with one scatter and two gathers.
  """
  if count is None:
    count = segment_count(segment_ids, num_segments, data.dtype)
  return _extremum([(data, segment_ids)], num_segments, count, True)


def segment_min(data: jax.Array, segment_ids: jax.Array, num_segments: int,
                count: jax.Array | None = None) -> jax.Array:
  """Minimum per segment; zero (not `+inf`) for empty segments. Shapes as `segment_mean`."""
  if count is None:
    count = segment_count(segment_ids, num_segments, data.dtype)
  return _extremum([(data, segment_ids)], num_segments, count, False)


def segment_softmax_parts(parts: Sequence[Part], num_segments: int) -> list[jax.Array]:
  """Softmax of logits `[m_i, ...]` over all rows, of all parts, that share a segment.

  The per-segment maximum is subtracted first (under `stop_gradient`, which leaves the value
  and the gradient unchanged), so the denominator is at least 1 for every non-empty segment.

  Returns:
    One array of weights per part, shaped like its logits.
  """
  top = None
  for logits, ids in parts:
    part = logits if ids is None else jax.ops.segment_max(logits, ids, num_segments)
    top = part if top is None else jnp.maximum(top, part)
  top = jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0))
  exps = [jnp.exp(logits - _pick(top, ids)) for logits, ids in parts]
  total = sum(_sum(e, ids, num_segments) for e, (_, ids) in zip(exps, parts))
  return [e / _pick(total, ids) for e, (_, ids) in zip(exps, parts)]


def segment_softmax(logits: jax.Array, segment_ids: jax.Array,
                    num_segments: int) -> jax.Array:
  """Softmax of `logits` `[M, ...]` over the rows of each segment (attention weights)."""
  return segment_softmax_parts([(logits, segment_ids)], num_segments)[0]


def aggregate_parts(parts: Sequence[Part], num_segments: int,
                    aggregators: Sequence[str] = ('sum',),
                    scalers: Sequence[str] = ('identity',),
                    avg_log_degree: float = 1.0) -> jax.Array:
  """Aggregates messages into their receivers with one or several reductions (PNA-style).

  With several aggregators and degree scalers this is the Principal Neighbourhood Aggregation
  of Corso et al. (2020): every aggregate is multiplied by each scaler, `identity` (1),
  `amplification` (`log(d + 1) / avg_log_degree`) or `attenuation` (its inverse), where `d` is
  the receiver's number of messages, and everything is concatenated. The standard deviation
  is computed in two passes (`E[(x - mean)^2]`): `E[x^2] - E[x]^2` cancels catastrophically
  where messages agree, e.g. a neuron with one input, and its rounding would break exact
  equivariance.

  Args:
    parts: `(messages [m_i, D], receivers [m_i] or None)` (see the module docstring).
    num_segments: static number of receiving nodes.
    aggregators: names from `AGGREGATORS`.
    scalers: names from `SCALERS`.
    avg_log_degree: `mean(log(d + 1))` over the training graphs (the PNA normaliser `delta`).

  Returns:
    `[num_segments, len(aggregators) * len(scalers) * D]`.

  Raises:
    ValueError: for an unknown aggregator or scaler name.
  """
  _check_names(aggregators, scalers)
  n = num_segments
  dtype = parts[0][0].dtype
  count = sum(jnp.ones((n,), dtype) if ids is None else segment_count(ids, n, dtype)
              for _, ids in parts)
  safe_count = jnp.maximum(count, 1)[:, None]
  total = mean = None
  if {'sum', 'mean', 'std'} & set(aggregators):
    total = sum(_sum(values, ids, n) for values, ids in parts)
    mean = total / safe_count
  results = []
  for name in aggregators:
    if name == 'sum':
      results.append(total)
    elif name == 'mean':
      results.append(mean)
    elif name in ('max', 'min'):
      results.append(_extremum(parts, n, count, name == 'max'))
    else:  # std
      square = sum(_sum(jnp.square(values - _pick(mean, ids)), ids, n) for values, ids in parts)
      std = jnp.sqrt(square / safe_count + _STD_EPS)
      results.append(jnp.where((count > 0)[:, None], std, 0))
  return _scale(results, count, scalers, avg_log_degree)


def aggregate_totals(total: jax.Array, count: jax.Array,
                     aggregators: Sequence[str] = ('sum',),
                     scalers: Sequence[str] = ('identity',),
                     avg_log_degree: float = 1.0) -> jax.Array:
  """`aggregate_parts` from per-segment sums already accumulated, e.g. block by block.

  Only the aggregators that a running sum determines (`'sum'`, `'mean'`) are available; the
  scalers are as in `aggregate_parts`.

  Args:
    total: `[num_segments, D]` sum of the messages each segment received.
    count: `[num_segments]` how many messages each segment received.
    aggregators: names among `'sum'`, `'mean'`.
    scalers: names from `SCALERS`.
    avg_log_degree: the PNA normaliser (see `aggregate_parts`).

  Returns:
    `[num_segments, len(aggregators) * len(scalers) * D]`, as `aggregate_parts` would give.

  Raises:
    ValueError: for an aggregator other than sum and mean (max, min and std need every message
      at once: use the unchunked path), or an unknown scaler.
  """
  _check_names(aggregators, scalers)
  needs_all = [name for name in aggregators if name not in ('sum', 'mean')]
  if needs_all:
    raise ValueError(f'aggregators {needs_all} cannot be accumulated block by block; with '
                     "edge chunks use aggregation 'sum' or 'mean' (or turn edge chunks off)")
  mean = total / jnp.maximum(count, 1)[:, None]
  return _scale([total if name == 'sum' else mean for name in aggregators], count, scalers,
                avg_log_degree)


def _check_names(aggregators: Sequence[str], scalers: Sequence[str]) -> None:
  for name in aggregators:
    if name not in AGGREGATORS:
      raise ValueError(f'unknown aggregator {name!r}; choose from {AGGREGATORS}')
  for name in scalers:
    if name not in SCALERS:
      raise ValueError(f'unknown scaler {name!r}; choose from {SCALERS}')


def _scale(results: list[jax.Array], count: jax.Array, scalers: Sequence[str],
           avg_log_degree: float) -> jax.Array:
  """The aggregates concatenated, times each degree scaler (see `aggregate_parts`)."""
  out = jnp.concatenate(results, axis=-1) if len(results) > 1 else results[0]
  if tuple(scalers) == ('identity',):
    return out
  log_degree = jnp.log(count + 1)[:, None]
  scaled = []
  for name in scalers:
    if name == 'identity':
      scaled.append(out)
    elif name == 'amplification':
      scaled.append(out * (log_degree / avg_log_degree))
    else:
      scaled.append(out * (avg_log_degree / jnp.maximum(log_degree, 1e-3)))
  return jnp.concatenate(scaled, axis=-1)


def aggregate(messages: jax.Array, segment_ids: jax.Array, num_segments: int,
              aggregators: Sequence[str] = ('sum',), scalers: Sequence[str] = ('identity',),
              avg_log_degree: float = 1.0) -> jax.Array:
  """`aggregate_parts` of one part: `messages` `[M, D]` into `segment_ids` `[M]`."""
  return aggregate_parts([(messages, segment_ids)], num_segments, aggregators, scalers,
                         avg_log_degree)


def resolve_aggregation(aggregation: str | Sequence[str]) -> tuple[tuple[str, ...],
                                                                   tuple[str, ...]]:
  """`(aggregators, scalers)` from a metanetwork's `aggregation` field.

  `'pna'` is `PNA_AGGREGATORS` with `PNA_SCALERS`; a name or a sequence of names from
  `AGGREGATORS` uses the identity scaler only.
  """
  if isinstance(aggregation, str):
    if aggregation == 'pna':
      return PNA_AGGREGATORS, PNA_SCALERS
    return (aggregation,), ('identity',)
  return tuple(aggregation), ('identity',)

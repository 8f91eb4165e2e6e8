"""Scale and sign checks for metanetworks: the rescalings and sign flips of
`gmn_jax.graphs.scaling` (ReLU neurons: log-uniform factors q > 0; tanh and sine neurons:
q = ±1), with the negative twin `assert_not_scale_invariant`: a wrong factor (2 on a neuron
that admits none or only a sign, -1 on a ReLU neuron) must change the outputs.

Host-side, like the permutation checks (`permutations`), whose output handling they share.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jraph
import numpy as np

from gmn_jax.graphs import scaling
from gmn_jax.graphs.architecture import NodeType
from gmn_jax.testing.permutations import _crop, _outputs_of, _rng


def _relative_close(got: Any, want: Any, rtol: float) -> tuple[bool, str]:
  """Every leaf within `rtol` of `want`, relative to the leaf's largest magnitude."""
  worst = ''
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(got)[0],
                          jax.tree_util.tree_leaves(want)):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    change = np.max(np.abs(x - y), initial=0.0) / max(np.max(np.abs(y), initial=0.0), 1e-30)
    if not change <= rtol:
      worst += f'\n  {jax.tree_util.keystr(path)}: relative change {change:.3g}'
  return not worst, worst


def _factors(pg, key: Any, n: int, max_scale: float) -> list[np.ndarray]:
  kinds = scaling.scaling_kinds(pg)
  if not np.any(kinds != scaling.NONE):
    raise ValueError(f'{pg!r}: no neuron admits a rescaling or sign flip (scaling_kinds is '
                     'NONE everywhere); the check would test nothing.')
  rng = _rng(key)
  return [scaling.random_factors(kinds, rng, max_scale) for _ in range(n)]


def assert_scale_invariant(fn: Callable[[jraph.GraphsTuple], Any], pg, variables: Any,
                           key: Any, n: int = 3, max_scale: float = 4.0,
                           rtol: float = 1e-4) -> None:
  """Asserts that `fn`'s outputs (as in `assert_invariant`) stay within `rtol` (relative to
  their largest magnitude) when random per-neuron factors (`scaling.random_factors`, scales
  log-uniform in `[1 / max_scale, max_scale]`) are applied to the network.

  Raises:
    AssertionError: naming the outputs that changed.
    ValueError: if no neuron of `pg` admits a factor.
  """
  graph = jax.device_get(pg.encode(variables))
  reference = _outputs_of(fn(graph))
  for i, factors in enumerate(_factors(pg, key, n, max_scale)):
    ok, why = _relative_close(_outputs_of(fn(scaling.apply_factors(graph, factors))),
                              reference, rtol)
    if not ok:
      raise AssertionError(f'outputs are not invariant under scaling {i}:{why}')


def assert_scale_equivariant(fn: Callable[[jraph.GraphsTuple], jraph.GraphsTuple], pg,
                             variables: Any, key: Any, n: int = 3, max_scale: float = 4.0,
                             rtol: float = 1e-4) -> None:
  """Asserts that `fn`'s `nodes['hidden']` move with each neuron's factor q, its
  `edges['hidden']` with `q_receiver / q_sender`, and its `globals` do not change, under
  random per-neuron factors (see `assert_scale_invariant`).

  Raises:
    AssertionError: naming the outputs that did not move with the factors.
    ValueError: if no neuron of `pg` admits a factor.
  """
  graph = jax.device_get(pg.encode(variables))
  ref = _crop(pg, fn(graph))
  senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
  for i, q in enumerate(_factors(pg, key, n, max_scale)):
    out = _crop(pg, fn(scaling.apply_factors(graph, q)))
    per_edge = (q[receivers] / q[senders])[:, None]
    ok, why = _relative_close(
        (out.nodes['hidden'], out.edges['hidden'], out.globals),
        (ref.nodes['hidden'] * q[:, None], ref.edges['hidden'] * per_edge, ref.globals), rtol)
    if not ok:
      raise AssertionError(f'outputs are not equivariant under scaling {i}:{why}')


def assert_not_scale_invariant(fn: Callable[[jraph.GraphsTuple], Any], pg, variables: Any,
                               rtol: float = 1e-4) -> None:
  """The negative twin of `assert_scale_invariant`: wrong factors on every hidden neuron (2
  where `scaling_kinds` admits none or only a sign, -1 where it admits a positive scale)
  change the function, so they must change `fn`'s outputs by more than `rtol`.

  Raises:
    AssertionError: if the outputs stay the same.
  """
  graph = jax.device_get(pg.encode(variables))
  kinds = scaling.scaling_kinds(pg)
  hidden = np.asarray(graph.nodes['type']) == int(NodeType.HIDDEN)
  wrong = np.where(kinds == scaling.SCALE, -1.0, 2.0)
  factors = np.where(hidden, wrong, 1.0).astype(np.float32)
  ok, _ = _relative_close(_outputs_of(fn(scaling.apply_factors(graph, factors))),
                          _outputs_of(fn(graph)), rtol)
  if ok:
    raise AssertionError('factors that no neuron admits did not change the outputs: the '
                         'function ignores information that only a true scaling preserves.')

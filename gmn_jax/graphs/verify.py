"""The symmetry safety net: drawn symmetries are checked numerically against the traced program.

Every symmetry `random_symmetry` draws is derived from constraints the tracer found; a rule
that misses a constraint (a constant that tells neurons apart, a parameter shared between
heads, ...) would give augmentations that change the network's function, silently. This module
runs the traced program itself on the original and on the permuted parameters and compares the
outputs; a mismatch raises `SymmetryError` naming the neuron groups the faulty part of the
symmetry moves. `trace` runs it by default (see its `check_symmetries` argument).

Cost: one compilation of the traced program and `3 + 3 * draws` evaluations of it (the
parameters are permuted on the host through the slot layout, `Symmetry.parameter_source`);
about as much as compiling the model once. Host-side.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gmn_jax.graphs.symmetry import SymmetryError


def _perturbed(leaves: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
  """Leaves with random multiplicative noise (signs kept, so variances stay positive) and
  small additive noise on all-constant leaves (ones/zeros inits would hide mismatches)."""
  out = []
  for leaf in leaves:
    leaf = np.asarray(leaf)
    noisy = leaf * np.exp(0.1 * rng.standard_normal(leaf.shape))
    if leaf.size > 1 and np.all(leaf == leaf.ravel()[0]):
      noisy = noisy + 0.05 * np.abs(leaf.ravel()[0]) * rng.standard_normal(leaf.shape) + \
          (0.02 * rng.standard_normal(leaf.shape) if leaf.ravel()[0] == 0 else 0)
    out.append(noisy.astype(leaf.dtype))
  return out


def _generic(leaves: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
  """Leaves at a generic scale: every weight of rank >= 2 gets standard normal noise scaled by
  1/sqrt(fan in) (fan in: all but its last axis) on top of `_perturbed`'s noise. A model
  initialised with small weights (transformers' std 0.02 on a tiny width) has near-zero
  attention logits, so a symmetry that scrambles the queries and keys barely moves its
  output; at this scale it does."""
  out = []
  for leaf in _perturbed(leaves, rng):
    if leaf.ndim >= 2:
      fan_in = max(int(np.prod(leaf.shape[:-1])), 1)
      leaf = (leaf + rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)
    out.append(leaf)
  return out


def _shuffled(arrays: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
  """Integer inputs (token ids, masks, positions) with their last axis shuffled: other
  tokens at other positions, every value still one the model was given. Positions of one
  length move together, so ids and their masks stay aligned. Float inputs are kept."""
  perms: dict[int, np.ndarray] = {}
  out = []
  for a in arrays:
    if jnp.issubdtype(a.dtype, jnp.floating) or a.ndim == 0:
      out.append(a)
      continue
    perm = perms.setdefault(a.shape[-1], rng.permutation(a.shape[-1]))
    out.append(a[..., perm])
  return out


def _mismatch(ref: Sequence[Any], out: Sequence[Any], rtol: float) -> float | None:
  """The largest relative difference between two lists of outputs; None if `ref` is not
  finite (that parameter set tells nothing)."""
  worst = 0.0
  for a, b in zip(ref, out):
    a, b = np.asarray(a), np.asarray(b)
    if not jnp.issubdtype(a.dtype, jnp.floating):
      if not np.array_equal(a, b):
        return float('inf')
      continue
    if not np.isfinite(a).all():
      return None
    scale = float(np.abs(a).max(initial=0.0)) + 1e-6
    worst = max(worst, float(np.abs(a - b).max(initial=0.0)) / scale)
  return worst if worst > rtol else 0.0


def check_symmetries(pg, variables: Any, example_arrays: Sequence[Any], draws: int = 2,
                     seed: int = 0, rtol: float = 1e-3) -> None:
  """Checks that `draws` random symmetries of `pg` preserve the traced program's output.

  The program is evaluated on the given variables at the example arrays; on a randomly
  perturbed copy (so that equal initial values, e.g. LayerNorm scales of one, cannot hide a
  mismatch) at random float inputs of the same shapes; and on a copy at a generic scale
  (weights ~ 1/sqrt(fan in), so that small initial weights cannot hide a mismatch, e.g.
  near-uniform attention) at random float inputs with the integer inputs' positions
  shuffled. Host-side.

  Args:
    pg: the `ParameterGraph` (made by `trace` / `trace_function`).
    variables: parameters with the traced structure.
    example_arrays: the array arguments the model was traced with (float arrays are also
      replaced by standard normal draws; integer arrays, e.g. token ids, are used as given
      and with their last axis shuffled).
    draws: how many random symmetries to check.
    seed: seeds the symmetries, the perturbation and the random inputs.
    rtol: largest allowed difference, relative to the output's largest magnitude.

  Raises:
    SymmetryError: a drawn symmetry changes the output; the message names the neuron groups
      moved by the part of the symmetry at fault and the size of the change.
  """
  if draws <= 0:
    return
  program = pg.probe_program.closed
  run = jax.jit(lambda leaves, arrays: jax.core.eval_jaxpr(program.jaxpr, program.consts,
                                                            *leaves, *arrays))
  run = _host_outputs(run)
  rng = np.random.default_rng(seed)
  arrays = [np.asarray(a) for a in example_arrays]
  random_arrays = [rng.standard_normal(a.shape).astype(a.dtype)
                   if jnp.issubdtype(a.dtype, jnp.floating) else a for a in arrays]
  leaves = [np.asarray(l) for l in jax.tree_util.tree_leaves(pg.to_variables(variables))]
  cases = [(leaves, arrays), (_perturbed(leaves, rng), random_arrays),
           (_generic(leaves, rng), _shuffled(random_arrays, rng))]
  refs = [run(l, a) for l, a in cases]
  orbits = pg._symmetry_orbits()  # pylint: disable=protected-access
  for d in range(draws):
    sym = pg.random_symmetry(seed + d)
    for (case_leaves, case_arrays), ref in zip(cases, refs):
      if _changes(pg, run, sym, case_leaves, case_arrays, ref, rtol):
        raise _explain(pg, orbits, run, sym, case_leaves, case_arrays, ref, rtol)


def _host_outputs(run):
  return lambda leaves, arrays: [np.asarray(o) for o in run(leaves, arrays)]


def _changes(pg, run, sym, leaves, arrays, ref, rtol) -> float:
  """The relative output change `sym` makes (0.0 within `rtol`); parameters are permuted on
  the host through the slot layout, so no encode/decode is compiled."""
  flat = np.concatenate([np.ravel(l) for l in leaves])[sym.parameter_source()]
  ends = np.cumsum([np.size(l) for l in leaves])[:-1]
  moved = [part.reshape(np.shape(l)).astype(np.asarray(l).dtype)
           for part, l in zip(np.split(flat, ends), leaves)]
  return _mismatch(ref, run(moved, arrays), rtol) or 0.0


def _explain(pg, orbits, run, sym, leaves, arrays, ref, rtol) -> SymmetryError:
  """The error for a failing symmetry: each independent part of it is tried on its own."""
  arch = pg.architecture
  lines = []
  for nodes in orbits.components():
    part = orbits.restrict(sym, nodes)
    if part is None:
      continue
    change = _changes(pg, run, part, leaves, arrays, ref, rtol)
    if change:
      moved = np.flatnonzero(part.node_perm != np.arange(pg.n_node))
      names = sorted({arch.groups[int(g)].name or '<input>' for g in arch.group_of(moved)})
      lines.append(f'  groups {", ".join(names)}: output changes by {change:.3g} (relative)')
  if not lines:
    lines.append('  (no single independent part fails on its own; their combination does)')
  return SymmetryError(
      'a drawn symmetry changes the traced program\'s output, so the tracer missed a '
      'constraint of this model; no symmetry of it can be trusted. Parts at fault:\n'
      + '\n'.join(lines) + '\nPlease report the model; pass check_symmetries=0 to trace '
      'only to inspect the graph, and do not augment with random_symmetry.')

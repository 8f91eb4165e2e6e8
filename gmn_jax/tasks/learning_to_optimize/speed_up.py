"""The learned-optimizer literature's speed-up metric: how many fewer steps an optimizer needs
to reach tuned Adam's best training loss (GradMetaNet, NeurIPS 2025, Table 1). Host-side numpy.

Per seed (every optimizer starts from the same initialisation and sees the same batches for a
given seed): the reference's training-loss curve, smoothed by a trailing mean over `window`
steps, reaches its lowest value L* after t_ref steps; an optimizer that first reaches L* on its
own smoothed curve after t steps has speed-up t_ref / t (> 1: faster than the reference).
One that never reaches L* within the horizon has no speed-up (None): the report counts the seeds
that reached it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def trailing_mean(losses: np.ndarray, window: int) -> np.ndarray:
  """`[S, T]` losses → `[S, T]`: the mean of each step's last `window` values (fewer at the
  start). A non-finite loss makes every later value non-finite: a diverged run stays
  diverged."""
  losses = np.asarray(losses, np.float64)
  if window < 1:
    raise ValueError(f'window must be at least 1, not {window}')
  csum = np.cumsum(losses, axis=-1)
  shifted = np.concatenate([np.zeros_like(csum[..., :window]), csum[..., :-window]], axis=-1)
  count = np.minimum(np.arange(1, losses.shape[-1] + 1), window)
  return (csum - shifted[..., :losses.shape[-1]]) / count


def steps_to_reach(losses: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
  """`[S, T]` curves, `[S]` thresholds → `[S]`: the number of steps after which each curve is
  first at or below its threshold (1 … T), or 0 where it never is."""
  below = np.asarray(losses) <= np.asarray(thresholds)[:, None]
  first = np.argmax(below, axis=-1) + 1
  return np.where(below.any(axis=-1), first, 0)


def speed_up(reference: np.ndarray, method: np.ndarray, window: int) -> dict[str, Any]:
  """Per-seed speed-up of `method` over `reference` (training losses `[S, T]`, same seeds).

  Returns:
    `speed_up` (`[S]` list, None where the method never reached the reference's best),
    `steps` (the method's steps to reach it, 0 where never), `reference_steps` (the
    reference's steps to its own best) and `reached` (how many seeds reached it).
  """
  ref = trailing_mean(reference, window)
  best = np.min(np.where(np.isfinite(ref), ref, np.inf), axis=-1)
  ref_steps = steps_to_reach(ref, best)
  steps = steps_to_reach(trailing_mean(method, window), best)
  ratio = [float(r) / s if s else None for r, s in zip(ref_steps, steps)]
  return {'speed_up': ratio, 'steps': steps.tolist(),
          'reference_steps': ref_steps.tolist(), 'reached': int(np.sum(steps > 0))}

"""The learning-to-optimize report: results.json, results.md, curves.npz and plots. Host-side."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from gmn_jax.tasks.learning_to_optimize.methods import LABELS, REGISTRY


def _stat(values: list[float]) -> str:
  a = np.asarray(values, np.float64)
  return f'{np.mean(a):.3f} ± {np.std(a):.3f}'


def table(results: dict[str, Any]) -> str:
  """Test loss / test accuracy (mean ± sd over seeds) per method and held-out task."""
  tasks = list(results['tasks'])
  lines = ['| method | ' + ' | '.join(tasks) + ' |', '|---' * (len(tasks) + 1) + '|']
  methods = list(next(iter(results['tasks'].values()))['methods']) if tasks else []
  for m in methods:
    cells = [f'{_stat(t["methods"][m]["test_loss"])} / '
             f'{100 * np.mean(t["methods"][m]["test_accuracy"]):.1f} ± '
             f'{100 * np.std(t["methods"][m]["test_accuracy"]):.1f}%'
             for t in results['tasks'].values()]
    lines.append(f'| {LABELS[m]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def _speed_up_cell(record: dict[str, Any]) -> str:
  ratio = np.asarray(record['speed_up'], np.float64)
  n = f'{record["reached"]}/{ratio.size}'
  if not record['reached']:
    return f'not reached (0/{ratio.size})'
  return f'{np.nanmean(ratio):.2f} ± {np.nanstd(ratio):.2f} ({n})'


def speed_up_table(results: dict[str, Any]) -> str:
  """Speed-up over tuned Adam (its steps to its best smoothed training loss ÷ the method's
  steps to that loss; mean ± sd over the seeds that reached it, and how many did)."""
  tasks = list(results['tasks'])
  lines = ['| method | ' + ' | '.join(tasks) + ' |', '|---' * (len(tasks) + 1) + '|']
  methods = list(next(iter(results['tasks'].values()))['methods']) if tasks else []
  for m in methods:
    cells = [_speed_up_cell(t['methods'][m]) for t in results['tasks'].values()]
    lines.append(f'| {LABELS[m]} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def verdicts(results: dict[str, Any]) -> list[str]:
  """One sentence per held-out task and graph optimizer: whom it beats on mean test loss."""
  out = []
  for name, t in results['tasks'].items():
    loss = {m: float(np.mean(r['test_loss'])) for m, r in t['methods'].items()}
    best = min(loss, key=lambda m: loss[m] if np.isfinite(loss[m]) else np.inf)
    for g in [m for m, method in REGISTRY.items() if method.graph]:
      if g not in loss:
        continue
      beats = [LABELS[m] for m in loss if m != g and loss[g] < loss[m]]
      loses = [LABELS[m] for m in loss if m != g and loss[g] >= loss[m]]
      out.append(f'- {name}: {LABELS[g]} beats {", ".join(beats) or "nobody"}; loses to '
                 f'{", ".join(loses) or "nobody"} (best: {LABELS[best]}).')
  return out


def write(workdir: pathlib.Path, results: dict[str, Any], curves: dict[str, np.ndarray],
          histories: dict[str, list[dict[str, Any]]], every: int) -> None:
  """Writes results.json, results.md, curves.npz (per seed), curves.png and meta_loss.png."""
  (workdir / 'results.json').write_text(json.dumps(results, indent=2))
  np.savez(workdir / 'curves.npz', **curves)
  cfg = results['config']
  tuned = ', '.join(f'{LABELS[k]} {v["learning_rate"]:g}'
                    + ('' if v['inside'] else ' (at the edge of its grid)')
                    for k, v in results['tuned'].items())
  md = ['# Learning to optimize: held-out tasks', '',
        f'Test loss / test accuracy after {cfg["eval_steps"]} steps (whole test split), mean ± '
        f'sd over {len(results["seeds"])} seeds never used in meta-training or tuning. '
        f'Learning rates tuned on the meta-training tasks: {tuned}. Meta-training: '
        f'{cfg["meta"]["meta_steps"]} meta-steps of {cfg["meta"]["unroll"]}-step unrolls '
        f'({cfg["meta"]["estimator"]}) per learned optimizer. Run time '
        f'{results["seconds"] / 60:.1f} min.', '', table(results), '',
        f'Speed-up over tuned Adam: the steps Adam takes to its best training loss (trailing '
        f'mean over {cfg["speed_up_window"]} steps, per seed) divided by the steps the method '
        f'takes to reach that loss (> 1: faster; GradMetaNet\'s Table 1 metric).', '',
        speed_up_table(results), '', *verdicts(results),
        *[f'- {LABELS[m]}: meta-training failed, not evaluated ({r["failed"]})'
          for m, r in results['meta_training'].items() if 'failed' in r], '',
        '![test loss during training](curves.png)', '', '![meta-loss](meta_loss.png)']
  (workdir / 'results.md').write_text('\n'.join(md) + '\n')
  _plot_curves(workdir / 'curves.png', results, curves, every)
  _plot_meta(workdir / 'meta_loss.png', histories)


def _plot_curves(path, results, curves, every):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = list(results['tasks'])
  fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
  for ax, name in zip(axes[0], names):
    for m in results['tasks'][name]['methods']:
      loss = curves[f'{name}/{m}/test_loss']
      x = np.arange(loss.shape[1]) * every
      mean, sd = loss.mean(0), loss.std(0)
      ax.plot(x, mean, label=LABELS[m], ls='-' if m in REGISTRY and REGISTRY[m].graph else '--')
      ax.fill_between(x, mean - sd, mean + sd, alpha=0.15)
    ax.set(title=name, xlabel='step', ylabel='test loss', yscale='log')
  axes[0][0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_meta(path, histories):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5, 3.6))
  for m, history in histories.items():
    if not history:
      continue
    loss = np.asarray([h['meta_loss'] for h in history])
    width = max(1, len(loss) // 20)
    smooth = np.convolve(loss, np.ones(width) / width, mode='valid')
    ax.plot(np.arange(len(smooth)) + width, smooth, label=LABELS[m])
  ax.set(xlabel='meta-step', ylabel='meta-loss (look-ahead training loss)',
         title='meta-training')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)

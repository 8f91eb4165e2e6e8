"""Learning curves over zoo size: each method trained on nested subsets of one zoo's training
networks (e.g. 200 ⊂ 1,000 ⊂ 3,000) and tested on one held-out set. Host-side.

`curve(config, data, workdir, sizes)` splits `data` once (`split`: test and validation as
`config` gives them, the rest the training pool), orders the pool by a permutation of
`config.seed`, and for each size n trains every method of `config.methods` on the first n
networks of that order, with the training `train_config_for` gives the method (its
`method_overrides`, epochs raised to `config.min_steps` steps) and, with `max_steps`, its
epochs lowered so it makes at most that many steps. Each finished (method, size) point is
saved on its own (`points/<method>-n<size>.json`) and skipped when the curve is run again;
a killed training resumes from its checkpoints (`runs/<method>-n<size>`). Writes
`curve.json`, `curve.md` (R², Kendall τ and the spread of the predictions per method and
size) and `curve.png` (test R² against training networks).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from gmn_jax.tasks.diverse_architectures.config import DiverseArchitecturesConfig
from gmn_jax.tasks.diverse_architectures.data import split
from gmn_jax.tasks.diverse_architectures.methods import REGISTRY
from gmn_jax.tasks.diverse_architectures.run import build_model, train_config_for
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.training.encoding import Encoded
from gmn_jax.training.fit import TrainConfig, fit, predict

SIZES = (200, 1000, 3000)


def members_for(sizes: Sequence[int], test_fraction: float, val_fraction: float) -> int:
  """The zoo size whose training pool (after `split`'s test and validation shares) holds
  `max(sizes)` networks, plus 2% for networks dropped as diverged."""
  pool = max(sizes) / (1 - val_fraction) / (1 - test_fraction)
  return int(np.ceil(1.02 * pool))


def curve_train_config(name: str, config: DiverseArchitecturesConfig, n_train: int,
                       max_steps: int | None = None) -> TrainConfig:
  """The method's training on `n_train` networks (`train_config_for`), with at most
  `max_steps` steps (whole epochs, at least one) when given."""
  train = train_config_for(name, config, n_train)
  if max_steps is None:
    return train
  steps_per_epoch = -(-n_train // train.batch_size)
  return dataclasses.replace(train, epochs=max(1, min(train.epochs,
                                                      max_steps // steps_per_epoch)))


def _point(name: str, n: int, config: DiverseArchitecturesConfig, data: Encoded,
           rows: tuple[np.ndarray, np.ndarray, np.ndarray], workdir: pathlib.Path,
           max_steps: int | None, progress: bool) -> dict[str, Any]:
  train, val, test = rows
  graphs = data.graphs
  tic = time.time()
  model = build_model(name, config, graphs, train)
  train_config = curve_train_config(name, config, n, max_steps)
  fitted = fit(model, graphs, train, val, train_config, workdir / 'runs', f'{name}-n{n}',
               progress=progress)
  p_test = predict(model, fitted.params, graphs, test)
  p_train = predict(model, fitted.params, graphs, train)
  scores = metrics_lib.regression(graphs.targets[test], p_test)
  return {'method': name, 'n_train': n, 'test_r2': scores['r2'],
          'test_kendall_tau': scores['kendall_tau'], 'test_mse': scores['mse'],
          'train_r2': metrics_lib.r2(graphs.targets[train], p_train),
          'test_prediction_sd': float(np.std(p_test)), 'epochs': train_config.epochs,
          'steps': train_config.epochs * -(-n // train_config.batch_size),
          'learning_rate': train_config.learning_rate, 'best_epoch': fitted.best_epoch,
          'seconds': round(time.time() - tic, 1)}


def curve(config: DiverseArchitecturesConfig, data: Encoded, workdir: str | pathlib.Path,
          sizes: Sequence[int] = SIZES, max_steps: int | None = None,
          progress: bool = False) -> dict[str, Any]:
  """Trains each method of `config.methods` on the first n networks of the training pool for
  each n of `sizes` and tests it on `config`'s test split. Host-side driver.

  Args:
    config: the split (`test_fraction`, `val_fraction`, `seed`) and each method's training.
    data: the encoded zoo; its training pool must hold `max(sizes)` networks.
    workdir: points, checkpoints and the report go here.
    sizes: training-set sizes.
    max_steps: at most this many training steps per point (None: the method's epochs).
    progress: show progress bars.

  Returns:
    `{'points': [...], 'rows': {'pool', 'val', 'test'}, 'test_target_sd', 'sizes',
    'max_steps'}`, one point per (method, size): test R², τ and MSE, training R², the spread
    of the test predictions, epochs, steps, best epoch and seconds.

  Raises:
    ValueError: a size larger than the training pool.
  """
  workdir = pathlib.Path(workdir)
  (workdir / 'points').mkdir(parents=True, exist_ok=True)
  pool, val, test = split(config, data.table)
  sizes = sorted(int(n) for n in sizes)
  if sizes[-1] > len(pool):
    raise ValueError(f'the training pool holds {len(pool)} networks, fewer than the largest '
                     f'size {sizes[-1]}: generate a zoo of at least '
                     f'{members_for(sizes, config.test_fraction, config.val_fraction)} '
                     'networks (--members)')
  order = np.random.default_rng([config.seed, 2]).permutation(pool)
  points = []
  for n in sizes:
    train = np.sort(order[:n])
    for name in config.methods:
      path = workdir / 'points' / f'{name}-n{n}.json'
      if path.exists():
        point = json.loads(path.read_text())
      else:
        point = _point(name, n, config, data, (train, val, test), workdir, max_steps, progress)
        path.write_text(json.dumps(point, indent=1))
      points.append(point)
  out = {'points': points, 'sizes': sizes, 'max_steps': max_steps,
         'rows': {'pool': len(pool), 'val': len(val), 'test': len(test)},
         'test_target_sd': float(np.std(data.graphs.targets[test])),
         'methods': list(config.methods)}
  (workdir / 'curve.json').write_text(json.dumps(out, indent=1))
  (workdir / 'curve.md').write_text(table(out) + '\n\n![test R² against training networks]'
                                    '(curve.png)\n')
  plot(workdir / 'curve.png', out)
  return out


def table(result: dict[str, Any]) -> str:
  """`curve`'s points as markdown: one row per method, test R² / τ per size. Host-side."""
  sizes = result['sizes']
  by = {(p['method'], p['n_train']): p for p in result['points']}
  lines = ['| method | ' + ' | '.join(f'n = {n}: R² / τ' for n in sizes) + ' |',
           '|---|' + '---|' * len(sizes)]
  for name in result['methods']:
    cells = [f"{by[name, n]['test_r2']:.3f} / {by[name, n]['test_kendall_tau']:.3f}"
             for n in sizes]
    lines.append(f'| {REGISTRY[name].label} | ' + ' | '.join(cells) + ' |')
  lines += ['', '| method | n | epochs | steps | best epoch | train R² | test prediction sd | '
            'seconds |', '|---|---|---|---|---|---|---|---|']
  for p in result['points']:
    lines.append(f"| {REGISTRY[p['method']].label} | {p['n_train']} | {p['epochs']} | "
                 f"{p['steps']} | {p['best_epoch']} | {p['train_r2']:.3f} | "
                 f"{p['test_prediction_sd']:.3f} | {p['seconds']:.0f} |")
  return '\n'.join(lines)


def plot(path: pathlib.Path, result: dict[str, Any]) -> None:
  """Test R² against training networks (log axis), one line per method. Host-side."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5.2, 3.8))
  for name in result['methods']:
    mine = sorted((p['n_train'], p['test_r2']) for p in result['points']
                  if p['method'] == name)
    ax.plot(*zip(*mine), marker='o', label=REGISTRY[name].label)
  ax.axhline(0.3, color='grey', linestyle=':', linewidth=1, label='R² = 0.3')
  ax.axhline(0.0, color='black', linewidth=0.6)
  ax.set(xscale='log', xlabel='training networks', ylabel='test R²',
         title=f'diverse zoo: {result["rows"]["test"]} test networks')
  ax.set_xticks(result['sizes'], [str(n) for n in result['sizes']])
  ax.minorticks_off()
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)

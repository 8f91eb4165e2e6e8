"""The validation sweep behind each method's training: learning rate x width, scored on the
validation split only (the test networks are never read). Host-side.

`sweep(config, data, workdir)` trains every method of `config.methods` at each learning rate
and width of the grid, with the rest of its training as `config.for_method` gives it, and
writes `sweep.json`, `sweep.csv` and `sweep.md` (one row per trial, the pick per method marked).
The pick is the trial with the best validation R² (ties: the first in grid order); its
learning rate and width are what `config.BASELINE_OVERRIDES` records for the default run.
"""

from __future__ import annotations

import csv
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
from gmn_jax.training.fit import fit, predict

COLUMNS = ('method', 'learning_rate', 'hidden', 'epochs', 'best_epoch', 'val_r2',
           'val_kendall_tau', 'train_r2', 'val_prediction_sd', 'seconds', 'picked')


def sweep(config: DiverseArchitecturesConfig, data: Encoded, workdir: str | pathlib.Path,
          learning_rates: Sequence[float] = (1e-3, 3e-3, 1e-2),
          hiddens: Sequence[int] = (16, 32), progress: bool = False) -> dict[str, Any]:
  """Trains each method of `config.methods` at every (learning rate, width) on `config`'s
  split of `data` and scores it on the validation networks. Host-side driver.

  Args:
    config: the split, epochs and everything else each trial trains with
      (`config.for_method(name)`, its learning rate and `hidden` replaced by the grid's).
    data: the encoded zoo.
    workdir: trials train in `workdir/runs/<method>-lr<lr>-h<hidden>` (resumable); the
      tables go to `workdir/sweep.{json,csv,md}`.
    learning_rates, hiddens: the grid.
    progress: show progress bars.

  Returns:
    `{'rows': [...], 'picked': {method: {'learning_rate', 'hidden'}}, 'val_target_sd'}`; each
    row holds `COLUMNS`.
  """
  workdir = pathlib.Path(workdir)
  train, val, _ = split(config, data.table)
  graphs = data.graphs
  rows: list[dict[str, Any]] = []
  for name in config.methods:
    for lr in learning_rates:
      for hidden in hiddens:
        overrides = {**config.method_overrides.get(name, {}), 'learning_rate': lr,
                     'hidden': hidden}
        cfg = dataclasses.replace(config, method_overrides={**config.method_overrides,
                                                            name: overrides})
        tic = time.time()
        model = build_model(name, cfg, graphs, train)
        train_config = train_config_for(name, cfg, len(train))
        fitted = fit(model, graphs, train, val, train_config, workdir / 'runs',
                     f'{name}-lr{lr:g}-h{hidden}', progress=progress)
        p_val = predict(model, fitted.params, graphs, val)
        p_train = predict(model, fitted.params, graphs, train)
        scores = metrics_lib.regression(graphs.targets[val], p_val)
        rows.append({'method': name, 'learning_rate': lr, 'hidden': hidden,
                     'epochs': train_config.epochs, 'best_epoch': fitted.best_epoch,
                     'val_r2': scores['r2'], 'val_kendall_tau': scores['kendall_tau'],
                     'train_r2': metrics_lib.r2(graphs.targets[train], p_train),
                     'val_prediction_sd': float(np.std(p_val)),
                     'seconds': round(time.time() - tic, 1), 'picked': False})
  picked = {}
  for name in config.methods:
    mine = [r for r in rows if r['method'] == name]
    best = max(mine, key=lambda r: r['val_r2'])
    best['picked'] = True
    picked[name] = {'learning_rate': best['learning_rate'], 'hidden': best['hidden']}
  out = {'rows': rows, 'picked': picked,
         'val_target_sd': float(np.std(graphs.targets[val])),
         'rows_split': {'train': len(train), 'val': len(val)}}
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / 'sweep.json').write_text(json.dumps(out, indent=1))
  with open(workdir / 'sweep.csv', 'w', newline='') as f:
    writer = csv.DictWriter(f, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  (workdir / 'sweep.md').write_text(table(out) + '\n')
  return out


def table(result: dict[str, Any]) -> str:
  """`sweep`'s rows as a markdown table (the pick of each method in bold). Host-side."""
  lines = ['| method | learning rate | width | epochs | best epoch | val R² | val τ | '
           'train R² | val prediction sd |', '|---|---|---|---|---|---|---|---|---|']
  for r in result['rows']:
    b = '**' if r['picked'] else ''
    label = REGISTRY[r['method']].label
    lines.append(f"| {label} | {r['learning_rate']:g} | {r['hidden']} | {r['epochs']} | "
                 f"{r['best_epoch']} | {b}{r['val_r2']:.3f}{b} | {r['val_kendall_tau']:.3f} | "
                 f"{r['train_r2']:.3f} | {r['val_prediction_sd']:.3f} |")
  return '\n'.join(lines)

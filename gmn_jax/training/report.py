"""The accuracy-prediction report: results.json, results.md, per-row predictions and plots.
Host-side.

`write_predictions` serves any task whose test rows have metadata: one CSV line per (method,
test row), so a run can be re-scored on any subset without retraining.
"""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any, Mapping

import numpy as np

LABELS = {'gmn': 'GMN', 'nggnn': 'NG-GNN', 'ngt': 'NG-T', 'scalegmn': 'ScaleGMN',
          'statnn': 'StatNN', 'statnn_gbm': 'StatNN (GBM)', 'mlp': 'flat MLP', 'dmc': 'DMC',
          'deepsets': 'DeepSets (params)'}
PROTOCOLS = {
    'all_snapshots': 'every snapshot of every network, split by network',
    'published': 'the published protocol: final checkpoints only, NFN\'s split, test τ at the '
                 'epoch of best validation τ'}


def table(results: dict[str, Any]) -> str:
  """A markdown table of test metrics per method, on held-out models."""
  lines = ['| method | Kendall τ | R² | MSE | test rows | note |', '|---|---|---|---|---|---|']
  for name, r in results['methods'].items():
    if 'test' not in r:
      lines.append(f'| {LABELS[name]} | – | – | – | – | {r["note"]} |')
      continue
    t = r['test']
    lines.append(f'| {LABELS[name]} | {t["kendall_tau"]:.3f} | {t["r2"]:.3f} | {t["mse"]:.5f} '
                 f'| {r["n_test"]} | {r["note"]} |')
  c = results['constant_predictor']
  lines.append(f'| constant (train mean) | {c["kendall_tau"]:.3f} | {c["r2"]:.3f} | '
               f'{c["mse"]:.5f} | {results["rows"]["test"]} | |')
  return '\n'.join(lines)


def write(workdir: pathlib.Path, results: dict[str, Any], histories: dict[str, list],
          predictions: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
  """Writes results.json, results.md, predictions.png and learning_curves.png."""
  (workdir / 'results.json').write_text(json.dumps(results, indent=2))
  rows = results['rows']
  protocol = results.get('protocol', {'protocol': 'all_snapshots'})
  about = PROTOCOLS[protocol['protocol']]
  if protocol['protocol'] == 'published':
    about += f' (split: {protocol["split_file"]}; final step {protocol["final_step"]})'
  split = ('published' if protocol['protocol'] == 'published'
           else f'{results["config"]["split"]} split')
  md = [f'# Predicting test accuracy from weights ({split})', '', f'Protocol: {about}.', '',
        f'Held-out models only: {rows["train"]} training, {rows["val"]} validation and '
        f'{rows["test"]} test rows (network snapshots), split by network. '
        f'{rows["dropped_diverged"]} diverged rows dropped. Architectures: '
        + '; '.join(results['architectures']) + '.', '', table(results), '',
        '![predicted vs true](predictions.png)', '', '![learning curves](learning_curves.png)']
  (workdir / 'results.md').write_text('\n'.join(md) + '\n')
  _plot_predictions(workdir / 'predictions.png', results, predictions)
  _plot_curves(workdir / 'learning_curves.png', histories)


def write_predictions(path: pathlib.Path, table: Mapping[str, np.ndarray],
                      predictions: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
                      ) -> pathlib.Path:
  """Writes every method's test predictions, one CSV line per (method, row). Host-side.

  Columns: `method`, `index` (the row's position in `table`), every one-dimensional column
  of `table` (e.g. `row`, `member`, `step`, hyperparameters), `target`, `prediction`.

  Args:
    path: the CSV to write (replaced atomically: written beside it, then renamed).
    table: metadata columns, each [n_rows].
    predictions: method -> (indices [n] into the table's rows, targets [n], predictions [n]).

  Returns:
    `path`.
  """
  path = pathlib.Path(path)
  columns = [c for c in sorted(table) if np.ndim(table[c]) == 1]
  tmp = path.with_name(path.name + '.tmp')
  with open(tmp, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['method', 'index', *columns, 'target', 'prediction'])
    for name, (rows, targets, preds) in predictions.items():
      for i, y, p in zip(np.asarray(rows), np.asarray(targets), np.asarray(preds)):
        writer.writerow([name, int(i), *(_text(table[c][i]) for c in columns),
                         repr(float(y)), repr(float(p))])
  tmp.replace(path)
  return path


def _text(value) -> str:
  if isinstance(value, (float, np.floating)):
    return repr(float(value))
  return str(value.item() if isinstance(value, np.generic) else value)


def _plot_predictions(path, results, predictions):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = list(predictions)
  if not names:
    return
  fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.8), squeeze=False)
  for ax, name in zip(axes[0], names):
    y, p = predictions[name]
    t = results['methods'][name]['test']
    ax.scatter(y, p, s=6, alpha=0.5, color='tab:blue', edgecolors='none')
    ax.plot([0, 1], [0, 1], color='0.5', lw=1, ls='--')
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel='true test accuracy', aspect='equal',
           title=f'{LABELS[name]}\nτ={t["kendall_tau"]:.3f}  R²={t["r2"]:.3f}')
  axes[0][0].set_ylabel('predicted test accuracy')
  fig.suptitle('Held-out models', y=1.0)
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches='tight')
  plt.close(fig)


def _plot_curves(path, histories):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  if not histories:
    return
  fig, (ax_loss, ax_tau) = plt.subplots(1, 2, figsize=(9, 3.6))
  for name, history in histories.items():
    epochs = [h['epoch'] for h in history]
    ax_loss.plot(epochs, [h['train_loss'] for h in history], label=LABELS[name])
    ax_tau.plot(epochs, [h['val_kendall_tau'] for h in history], label=LABELS[name])
  ax_loss.set(xlabel='epoch', ylabel='training MSE', yscale='log', title='training loss')
  ax_tau.set(xlabel='epoch', ylabel='Kendall τ', title='validation Kendall τ')
  for ax in (ax_loss, ax_tau):
    ax.xaxis.get_major_locator().set_params(integer=True)  # whole epochs
  ax_tau.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)

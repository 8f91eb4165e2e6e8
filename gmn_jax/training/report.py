"""The accuracy-prediction report: results.json, results.md, per-row predictions and plots.
Host-side.

`write_predictions` serves any task whose test rows have metadata: one CSV line per (method,
test row), so a run can be re-scored on any subset without retraining.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np

LABELS = {'gmn': 'GMN', 'nggnn': 'NG-GNN', 'ngt': 'NG-T', 'scalegmn': 'ScaleGMN',
          'statnn': 'StatNN', 'statnn_gbm': 'StatNN (GBM)', 'mlp': 'flat MLP', 'dmc': 'DMC',
          'deepsets': 'DeepSets (params)'}


def label(results: Mapping[str, Any], name: str) -> str:
  """Method `name`'s label in reports: the task's registry label recorded in
  `results['labels']`, else `LABELS`, else the name itself."""
  return results.get('labels', {}).get(name) or LABELS.get(name, name)


PROTOCOLS = {
    'all_snapshots': 'every snapshot of every network, split by network',
    'published': 'the published protocol: final checkpoints only, NFN\'s split, test τ at the '
                 'epoch of best validation τ'}


def table(results: dict[str, Any]) -> str:
  """A markdown table of test metrics per method, on held-out models."""
  lines = ['| method | Kendall τ | R² | MSE | test rows | note |', '|---|---|---|---|---|---|']
  for name, r in results['methods'].items():
    if 'test' not in r:
      lines.append(f'| {label(results, name)} | – | – | – | – | {r["note"]} |')
      continue
    t = r['test']
    lines.append(f'| {label(results, name)} | {t["kendall_tau"]:.3f} | {t["r2"]:.3f} | '
                 f'{t["mse"]:.5f} | {r["n_test"]} | {r["note"]} |')
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
  plot_curves(workdir / 'learning_curves.png', histories,
              labels={name: label(results, name) for name in histories})


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
           title=f'{label(results, name)}\nτ={t["kendall_tau"]:.3f}  R²={t["r2"]:.3f}')
  axes[0][0].set_ylabel('predicted test accuracy')
  fig.suptitle('Held-out models', y=1.0)
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches='tight')
  plt.close(fig)


@dataclasses.dataclass(frozen=True)
class Panel:
  """One panel of `plot_curves`: a metric of the per-epoch history records, by epoch.

  Attributes:
    key: the records' key of the metric (e.g. 'train_loss', 'val_kendall_tau').
    ylabel: the y-axis label.
    title: the panel's title.
    log: a log-scaled y axis (for losses).
  """

  key: str
  ylabel: str
  title: str
  log: bool = False


# The accuracy-prediction task's curves.
CURVES = (Panel('train_loss', 'training MSE', 'training loss', log=True),
          Panel('val_kendall_tau', 'Kendall τ', 'validation Kendall τ'))


def plot_curves(path: pathlib.Path, histories: Mapping[str, Sequence[Mapping[str, float]]],
                panels: Sequence[Panel] = CURVES, labels: Mapping[str, str] | None = None,
                levels: Mapping[str, Mapping[str, float]] | None = None) -> None:
  """Learning curves: one panel per metric, one line per method, whole epochs on the x axis.

  Writes nothing when there is nothing to draw.

  Raises:
    ValueError: a history whose records lack a panel's key.

  Args:
    path: the PNG written.
    histories: method -> its per-epoch records, each with 'epoch' and every panel's key.
    panels: the metrics drawn, left to right.
    labels: method -> its name in the legend (default: `LABELS`, else the method's name).
    levels: method -> {key: value} for methods trained without epochs (an identity edit, a
      fitted baseline): a dashed horizontal line in the panel of each key given.
  """
  levels = levels or {}
  labels = {**LABELS, **(labels or {})}
  labels = {name: labels.get(name, name) for name in [*histories, *levels]}
  for name, history in histories.items():
    missing = {p.key for p in panels} - set().union(*map(set, history))
    if history and missing:
      raise ValueError(f'the history of {name!r} has no {sorted(missing)}: its records have '
                       f'{sorted(history[0])}; draw panels of those keys')
  if not any(histories.values()) and not levels:
    return
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
  for ax, panel in zip(axes[0], panels):
    for name, history in histories.items():
      if history:
        ax.plot([h['epoch'] for h in history], [h[panel.key] for h in history],
                label=labels[name])
    for k, (name, values) in enumerate(levels.items()):
      if panel.key in values:
        ax.axhline(values[panel.key], ls='--', c=str(0.2 + 0.25 * k), label=labels[name])
    ax.set(xlabel='epoch', ylabel=panel.ylabel, title=panel.title,
           yscale='log' if panel.log else 'linear')
    ax.xaxis.get_major_locator().set_params(integer=True)  # whole epochs
  axes[0][-1].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)

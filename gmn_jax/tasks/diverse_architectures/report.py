"""The diverse-architectures report: tables overall and per family, per-network predictions,
predicted-vs-true plots coloured by family, the accuracy histogram per family (the GMN paper's
Figure 5) and the mean ± sd summary over settings and seeds. Host-side.
"""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any

import numpy as np

from gmn_jax.tasks.diverse_architectures.methods import REGISTRY
from gmn_jax.training import report



def _label(name: str) -> str:
  return REGISTRY[name].label if name in REGISTRY else name


_COLOURS = {'mlp': 'tab:blue', 'cnn': 'tab:orange', 'cnn1d': 'tab:green', 'deepsets': 'tab:red',
            'resnet': 'tab:purple', 'vit': 'tab:brown'}


def family_table(results: dict[str, Any]) -> str:
  """Markdown: R² / τ of each method (and the constant predictor) per family of test networks."""
  families = list(results['families'])
  lines = ['| method | ' + ' | '.join(f'{f} R² / τ' for f in families) + ' |',
           '|---|' + '---|' * len(families)]
  rows = [(_label(n), r['per_family']) for n, r in results['methods'].items()]
  rows.append(('constant (train mean)', results['constant_per_family']))
  for label, per in rows:
    cells = [f'{per[f]["r2"]:.3f} / {per[f]["kendall_tau"]:.3f}' if f in per else '–'
             for f in families]
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def write_json(workdir: pathlib.Path, results: dict[str, Any]) -> None:
  (workdir / 'results.json').write_text(json.dumps(results, indent=2))


def write(workdir: pathlib.Path, results: dict[str, Any], histories: dict[str, list],
          table: dict[str, np.ndarray], test: np.ndarray,
          predictions: dict[str, np.ndarray]) -> None:
  """results.json, results.md, predictions.csv, predictions.png, accuracy_histogram.png and
  learning_curves.png in `workdir`."""
  write_json(workdir, results)
  rows, cfg = results['rows'], results['config']
  setting = ('out of distribution: test on hidden size '
             f'{cfg["ood_test_hidden"] or int(table["hidden"].max())}' if cfg['split'] == 'ood'
             else f'{cfg["data_fraction"]:.0%} of the training networks')
  counts = ', '.join(f'{f} {c["train"]}/{c["test"]}' for f, c in results['families'].items())
  md = [f'# Accuracy prediction across diverse architectures ({setting})', '',
        f'{rows["train"]} training, {rows["val"]} validation and {rows["test"]} test networks '
        f'(train/test per family: {counts}); {rows["dropped_diverged"]} diverged networks '
        f'dropped. {len(results["architectures"])} architectures.', '',
        '## All test networks', '', report.table(results), '', '## Per family (R² / τ)', '',
        family_table(results), '', '![predicted vs true](predictions.png)', '',
        '![test accuracy per family](accuracy_histogram.png)', '',
        '![learning curves](learning_curves.png)']
  (workdir / 'results.md').write_text('\n'.join(md) + '\n')
  with open(workdir / 'predictions.csv', 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['member', 'family', 'architecture', 'activation', 'hidden',
                     'test_accuracy'] + list(predictions))
    for i, row in enumerate(test):
      writer.writerow([int(table['member'][row]), table['family'][row],
                       table['architecture'][row], table['activation'][row],
                       int(table['hidden'][row]), f'{table["test_accuracy"][row]:.4f}']
                      + [f'{p[i]:.4f}' for p in predictions.values()])
  _plot_predictions(workdir / 'predictions.png', results, table['family'][test],
                    table['test_accuracy'][test], predictions)
  _plot_histogram(workdir / 'accuracy_histogram.png', table)
  report.plot_curves(workdir / 'learning_curves.png', histories,
                     labels={n: _label(n) for n in histories})


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _plot_predictions(path, results, families, y, predictions):
  if not predictions:
    return
  plt = _pyplot()
  names = list(predictions)
  fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.9), squeeze=False)
  for ax, name in zip(axes[0], names):
    for family in sorted(set(families.tolist())):
      at = families == family
      ax.scatter(y[at], predictions[name][at], s=7, alpha=0.6, edgecolors='none',
                 color=_COLOURS.get(family), label=family)
    t = results['methods'][name]['test']
    ax.plot([0, 1], [0, 1], color='0.5', lw=1, ls='--')
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel='true test accuracy', aspect='equal',
           title=f'{_label(name)}\nR²={t["r2"]:.3f}  τ={t["kendall_tau"]:.3f}')
  axes[0][0].set_ylabel('predicted test accuracy')
  axes[0][-1].legend(fontsize=7, loc='upper left', markerscale=2)
  fig.suptitle('Held-out networks, coloured by family', y=1.0)
  fig.tight_layout()
  fig.savefig(path, dpi=110, bbox_inches='tight')
  plt.close(fig)


def _plot_histogram(path, table):
  plt = _pyplot()
  families = sorted(set(table['family'].tolist()), key=list(_COLOURS).index)
  fig, ax = plt.subplots(figsize=(6, 3.6))
  ax.hist([table['test_accuracy'][table['family'] == f] for f in families],
          bins=np.linspace(0, 1, 21), stacked=True, label=families,
          color=[_COLOURS[f] for f in families])
  ax.set(xlabel='test accuracy', ylabel='networks', title='Test accuracy of the zoo per family')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
  """Per setting: each method's test R² and τ per seed, their mean and sd (population)."""
  out: dict[str, Any] = {'settings': {}}
  for setting, results in runs.items():
    methods = {}
    for name in list(results[0]['methods']) + ['constant']:
      tests = [r['constant_predictor'] if name == 'constant' else r['methods'][name]['test']
               for r in results]
      methods[name] = {}
      for k in ('r2', 'kendall_tau'):
        values = [float(t[k]) for t in tests]
        methods[name].update({k: values, f'{k}_mean': float(np.mean(values)),
                              f'{k}_sd': float(np.std(values))})
    out['settings'][setting] = {'seeds': len(results), 'rows': results[0]['rows'],
                                'methods': methods}
  return out


def _cell(m: dict[str, Any], key: str, seeds: int) -> str:
  return (f'{m[f"{key}_mean"]:.3f} ± {m[f"{key}_sd"]:.3f}' if seeds > 1
          else f'{m[f"{key}_mean"]:.3f}')


def summary_table(summary: dict[str, Any]) -> str:
  """Markdown: R² and τ (mean ± sd where a setting ran several seeds) per method and setting."""
  settings = list(summary['settings'])
  lines = ['| method | ' + ' | '.join(f'{s} R² | {s} τ' for s in settings) + ' |',
           '|---|' + '---|---|' * len(settings)]
  names = list(summary['settings'][settings[0]]['methods'])
  for name in names:
    cells = []
    for s in settings:
      m, n = summary['settings'][s]['methods'].get(name), summary['settings'][s]['seeds']
      cells += [_cell(m, 'r2', n), _cell(m, 'kendall_tau', n)] if m else ['–'] * 2
    label = 'constant (train mean)' if name == 'constant' else _label(name)
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def margins(summary: dict[str, Any], method: str = 'gmn') -> dict[str, dict[str, Any]]:
  """`method`'s mean R² and τ minus each other method's, per setting, and whether it is ahead
  on both in every seed: `{setting: {other: {'r2', 'kendall_tau', 'ahead_every_seed'}}}`."""
  out = {}
  for s, v in summary['settings'].items():
    own = v['methods'].get(method)
    if own is None:
      continue
    out[s] = {other: {k: own[f'{k}_mean'] - m[f'{k}_mean'] for k in ('r2', 'kendall_tau')}
              | {'ahead_every_seed': bool(all(
                  a > b for k in ('r2', 'kendall_tau') for a, b in zip(own[k], m[k])))}
              for other, m in v['methods'].items() if other not in (method, 'constant')}
  return out


def margins_table(summary: dict[str, Any], method: str = 'gmn') -> str:
  """Markdown: `method`'s margin in mean R² / τ over each other method, per setting."""
  table = margins(summary, method)
  if not table:
    return ''
  others = list(next(iter(table.values())))
  lines = [f'{_label(method)} minus each method, mean R² / mean τ (✓: ahead on both in '
           'every seed)', '',
           '| setting | ' + ' | '.join(_label(o) for o in others) + ' |',
           '|---|' + '---|' * len(others)]
  for s, row in table.items():
    lines.append(f'| {s} | ' + ' | '.join(
        f'{row[o]["r2"]:+.3f} / {row[o]["kendall_tau"]:+.3f}'
        + (' ✓' if row[o]['ahead_every_seed'] else '') for o in others) + ' |')
  return '\n'.join(lines)


def write_summary(workdir: pathlib.Path, summary: dict[str, Any]) -> None:
  """summary.json and summary.md (mean ± sd over seeds, GMN's margins, times)."""
  summary = {**summary, 'margins': margins(summary)}
  (workdir / 'summary.json').write_text(json.dumps(summary, indent=2))
  seeds = ', '.join(f'{s}: {v["seeds"]} seed(s), {v["rows"]["train"]} training and '
                    f'{v["rows"]["test"]} test networks' for s, v in summary['settings'].items())
  md = ['# Accuracy prediction across diverse architectures: summary', '',
        f'{summary.get("networks", "?")} networks of {len(summary.get("architectures", []))} '
        f'(architecture, activation) templates. {seeds}. Zoo and encoding '
        f'{summary.get("zoo_seconds", 0):.0f} s, all {summary.get("total_seconds", 0):.0f} s.',
        '', summary_table(summary), '', margins_table(summary), '',
        'Each setting\'s folder holds its results.md (per family) and plots.']
  (workdir / 'summary.md').write_text('\n'.join(md) + '\n')

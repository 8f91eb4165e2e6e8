"""The INR-editing report: results.json, results.md, predictions.npz, edits.png and
learning_curves.png. Host-side."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from gmn_jax.tasks.inr_editing.methods import LABELS
from gmn_jax.training import report


CURVES = (report.Panel('train_mse', 'training MSE', 'training loss', log=True),
          report.Panel('val_mse', 'MSE', 'validation MSE', log=True))

# Published test MSEs (REFERENCES.md), for the honesty line of the table.
PUBLISHED = {
    'dilate': ('MNIST dilation, DWSNets data on [0, 1] (x1e-2): NP-NFN 2.55, NG-GNN-64 2.06, '
               'ScaleGMN-B 1.89, NG-T-64 1.75; NFN data on [-1, 1]: NFN-NP 0.0693, GMN 0.0603, '
               'NG-GNN 0.0635, NG-T 0.0556, NFT 0.0510 (about 4x the [0, 1] values).'),
    'contrast': ('CIFAR-10 CLAHE contrast on [-1, 1]: NFN-NP 0.0203, NFT 0.0200, GMN 0.0197. '
                 'Our contrast is a per-image stretch on grey MNIST: not comparable.'),
    'flip': 'No published numbers (our own non-local edit).',
}


def table(results: dict[str, Any]) -> str:
  """A markdown table of the test MSE of each method on held-out images."""
  lo, hi = results['pixel_range']
  lines = [f'| method | test MSE ×1e-2 (pixels in [{lo:g}, {hi:g}]) | ± s.e. | best epoch '
           '| seconds |', '|---|---|---|---|---|']
  for name, r in results['methods'].items():
    lines.append(f'| {LABELS[name]} | {100 * r["test_mse"]:.3f} | {100 * r["test_se"]:.3f} | '
                 f'{r["best_epoch"] or "–"} | {r["seconds"]:.0f} |')
  return '\n'.join(lines)


def write(workdir: pathlib.Path, config, data, methods: dict[str, dict[str, Any]],
          seconds: float) -> dict[str, Any]:
  """Writes the report files; returns the results dict (`results.json`)."""
  conv = data.zoo.config.conv
  sizes = {k: int(len(v)) for k, v in data.split.items()}
  results = {
      'edit': config.edit, 'pixel_range': [conv.low, conv.high],
      'convention': data.zoo.config.convention, 'split_inrs': sizes,
      'image_size': list(data.zoo.images.shape[1:]),
      'methods': {name: {'test_mse': float(r['test_mse'].mean()),
                         'test_se': float(r['test_mse'].std() / np.sqrt(len(r['test_mse']))),
                         'val_mse': r['val_mse'], 'best_epoch': r['best_epoch'],
                         'seconds': r['seconds'], 'history': r['history']}
                  for name, r in methods.items()},
      'total_seconds': seconds}
  (workdir / 'results.json').write_text(json.dumps(results, indent=2))
  np.savez(workdir / 'predictions.npz', test_inr=data.split['test'],
           test_image=data.zoo.records['image'][data.split['test']],
           **{f'test_mse_{name}': r['test_mse'] for name, r in methods.items()})
  md = [f'# INR editing: {config.edit}', '',
        f'Test MSE of the rendered edited INR against the edited image, on {sizes["test"]} '
        f'held-out INRs ({sizes["train"]} train, {sizes["val"]} validation; split by image), '
        f'at each method\'s best validation epoch. Pixels in [{conv.low:g}, {conv.high:g}] '
        f'({data.zoo.config.convention} convention): on [-1, 1] the same error is 4x the MSE.',
        '', table(results), '',
        f'Published: {PUBLISHED[config.edit]} Ours uses far fewer INRs '
        f'({sum(sizes.values())} of {data.zoo.config.dataset}) and {config.epochs} epochs '
        'on CPU, so the gap to the published numbers is expected.', '',
        '![edits](edits.png)', '', '![learning curves](learning_curves.png)']
  (workdir / 'results.md').write_text('\n'.join(md) + '\n')
  _plot_edits(workdir / 'edits.png', data, methods, config)
  report.plot_curves(
      workdir / 'learning_curves.png', {n: r['history'] for n, r in methods.items()}, CURVES,
      {n: label.split(' (')[0] for n, label in LABELS.items()},
      levels={n: {'val_mse': r['val_mse']} for n, r in methods.items() if not r['history']})
  return results


def _plot_edits(path: pathlib.Path, data, methods, config) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows = data.split['test'][:config.n_pictures]
  columns = [('INR (original)', np.asarray(methods['identity']['pictures']))
             if 'identity' in methods else ('image (original)', data.originals[rows]),
             (f'target ({config.edit})', data.targets[rows])]
  columns += [(LABELS[n].split(' (')[0], r['pictures']) for n, r in methods.items()
              if n != 'identity']
  lo, hi = data.zoo.config.conv.low, data.zoo.config.conv.high
  fig, axes = plt.subplots(len(rows), len(columns), squeeze=False,
                           figsize=(1.6 * len(columns), 1.6 * len(rows)))
  for j, (title, images) in enumerate(columns):
    axes[0, j].set_title(title, fontsize=7)
    for i in range(len(rows)):
      axes[i, j].imshow(np.clip(images[i, ..., 0], lo, hi), cmap='gray', vmin=lo, vmax=hi)
      axes[i, j].axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)

"""The INR classification report: results.json, results.md, predictions.npz, confusion.png and
inrs.png. Host-side."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np

from gmn_jax.tasks.inr_classification.methods import LABELS, REGISTRY
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.training import report
from gmn_jax.zoos.inr.zoo import InrZoo

CURVES = (report.Panel('train_loss', 'training cross-entropy', 'training loss'),
          report.Panel('val_accuracy', 'accuracy', 'validation accuracy'))


def table(results: dict[str, Any]) -> str:
  """A markdown table of test accuracy per method (held-out images, best validation epoch),
  with the training accuracy of the same parameters and the last epoch's training loss."""
  lines = ['| method | test accuracy | test cross-entropy | val accuracy | train accuracy | '
           'last train loss | best epoch | train s |', '|---|---|---|---|---|---|---|---|']
  for name, r in results['methods'].items():
    t = r['test']
    lines.append(f'| {LABELS[name]} | {100 * t["accuracy"]:.1f}% | {t["cross_entropy"]:.3f} | '
                 f'{100 * r["val_accuracy"]:.1f}% | {100 * r["train"]["accuracy"]:.1f}% | '
                 f'{r["final_train_loss"]:.3f} | {r["best_epoch"]} | '
                 f'{r["train_seconds"]:.0f} |')
  lines.append(f'| majority class | {100 * results["chance"]:.1f}% | | | | | | |')
  return '\n'.join(lines)


def best_graph_method(results: dict[str, Any]) -> str | None:
  graph = [m for m in results['methods'] if REGISTRY[m].graph]
  if not graph:
    return None
  return max(graph, key=lambda m: results['methods'][m]['test']['accuracy'])


def write(workdir: pathlib.Path, results: dict[str, Any], zoo: InrZoo,
          rows: tuple[np.ndarray, np.ndarray],
          logits: tuple[dict[str, np.ndarray], dict[str, np.ndarray]],
          histories: dict[str, list]) -> None:
  """Writes the report files into `workdir`.

  Args:
    rows: the (train, test) INR rows.
    logits: per method, the (train, test) logits `[len(rows), classes]`.
  """
  (train, test), (train_logits, logits) = rows, logits
  labels = zoo.records['label'][test]
  best = best_graph_method(results)
  if best is not None:
    results['confusion'] = {'method': best, 'matrix': metrics_lib.confusion_matrix(
        labels, logits[best].argmax(1), zoo.num_classes).tolist()}
  (workdir / 'results.json').write_text(json.dumps(results, indent=2))
  np.savez(workdir / 'predictions.npz', inr=zoo.records['inr'][test],
           image=zoo.records['image'][test], label=labels,
           train_inr=zoo.records['inr'][train], train_label=zoo.records['label'][train],
           **{f'logits/{name}': v for name, v in logits.items()},
           **{f'train_logits/{name}': v for name, v in train_logits.items()})
  z, n = results['zoo'], results['rows']
  md = ['# INR classification', '',
        f'{z["inrs"]} INRs ({results["config"]["zoo"]["dataset"]}), {z["describe"]}. Split by '
        f'image: {n["train"]} training INRs ({results["images"]["train"]} images), '
        f'{n["val"]} validation and {n["test"]} test INRs (one per held-out image). '
        'Test and training accuracy at the epoch of best validation accuracy.', '',
        table(results), '',
        '![INRs rendered next to their images](inrs.png)', '']
  if best is not None:
    md += [f'![confusion matrix of {LABELS[best]} on the test INRs](confusion.png)', '']
    _plot_confusion(workdir / 'confusion.png', np.asarray(results['confusion']['matrix']),
                    LABELS[best])
  md += ['![learning curves](learning_curves.png)']
  (workdir / 'results.md').write_text('\n'.join(md) + '\n')
  _plot_inrs(workdir / 'inrs.png', zoo, zoo.records['inr'][test[:8]])
  report.plot_curves(workdir / 'learning_curves.png', histories, CURVES, LABELS)


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _plot_confusion(path, matrix: np.ndarray, name: str):
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(4.6, 4.2))
  ax.imshow(matrix, cmap='Blues')
  for (i, j), count in np.ndenumerate(matrix):
    ax.text(j, i, str(count), ha='center', va='center', fontsize=7,
            color='white' if count > matrix.max() / 2 else 'black')
  ax.set(xlabel='predicted class', ylabel='true class', xticks=range(len(matrix)),
         yticks=range(len(matrix)),
         title=f'{name}: test INRs ({np.trace(matrix) / matrix.sum():.1%} correct)')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_inrs(path, zoo: InrZoo, rows: np.ndarray):
  """Top: the images; bottom: the INRs fitted to them, rendered on the same grid."""
  plt = _pyplot()
  rendered = zoo.render(rows)
  low, high = zoo.config.conv.low, zoo.config.conv.high
  fig, axes = plt.subplots(2, len(rows), figsize=(1.3 * len(rows), 3.0), squeeze=False)
  for k, row in enumerate(rows):
    image = zoo.images[zoo.records['image'][row]]
    for ax, picture, title in ((axes[0][k], image, f'image, {zoo.records["label"][row]}'),
                               (axes[1][k], rendered[k],
                                f'INR {zoo.records["psnr"][row]:.0f} dB')):
      picture = np.clip((picture - low) / (high - low), 0, 1)
      ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap='gray',
                vmin=0, vmax=1)
      ax.set_title(title, fontsize=8)
      ax.axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)

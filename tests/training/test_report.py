"""The one learning-curve plotter of every task's report."""

import pytest

from gmn_jax.training import report


def test_plot_curves(tmp_path):
  history = [{'epoch': e, 'train_loss': 1 / e, 'val_accuracy': e / 10} for e in (1, 2, 3)]
  panels = (report.Panel('train_loss', 'loss', 'training loss', log=True),
            report.Panel('val_accuracy', 'accuracy', 'validation accuracy'))
  path = tmp_path / 'curves.png'
  report.plot_curves(path, {'gmn': history, 'statnn': []}, panels,
                     levels={'statnn': {'val_accuracy': 0.1}})
  assert path.read_bytes().startswith(b'\x89PNG')
  report.plot_curves(tmp_path / 'none.png', {'gmn': []}, panels)  # nothing to draw
  assert not (tmp_path / 'none.png').exists()
  with pytest.raises(ValueError, match=r"'gmn' has no \['val_kendall_tau'\]"):
    report.plot_curves(path, {'gmn': history})  # the default panels: another task's keys

"""INR editing: the image edits, and the experiment end to end on a tiny config.

Corner cases covered: dilation against scipy's grey dilation (borders included); contrast
stretch reaching both ends of the range; flip is an involution and not local; unknown edits
and methods are refused; the split by image is a partition that keeps every INR of an
image in one split; a run killed mid-method resumes at its last finished epoch; a finished
run started again loads its methods instead of retraining them.
"""

from __future__ import annotations

import dataclasses
import json
import types

import numpy as np
import pytest
from scipy import ndimage

from gmn_jax.tasks.inr_editing import image_edits
from gmn_jax.tasks import inr_editing


def test_dilate_is_a_3x3_max_filter():
  images = np.random.default_rng(0).uniform(size=(3, 7, 5, 1)).astype(np.float32)
  want = np.stack([ndimage.grey_dilation(x[..., 0], size=(3, 3))[..., None] for x in images])
  np.testing.assert_array_equal(image_edits.dilate(images, 0.0, 1.0), want)
  dot = np.zeros((1, 5, 5, 1), np.float32)
  dot[0, 0, 0, 0] = 1.0  # a corner pixel grows into a 2x2 block, nothing wraps around
  assert image_edits.dilate(dot, 0.0, 1.0)[0, ..., 0].sum() == 4


def test_contrast_and_flip():
  rng = np.random.default_rng(1)
  images = rng.uniform(0.3, 0.6, size=(2, 8, 8, 1)).astype(np.float32)
  out = image_edits.contrast(images, -1.0, 1.0)
  assert out.min() == -1.0 and out.max() == 1.0
  flipped = image_edits.flip(images, 0.0, 1.0)
  np.testing.assert_array_equal(image_edits.flip(flipped, 0.0, 1.0), images)
  np.testing.assert_array_equal(flipped[:, :, 0], images[:, :, -1])
  with pytest.raises(ValueError, match='unknown edit'):
    image_edits.apply_edit('blur', images, 0.0, 1.0)
  with pytest.raises(ValueError, match='unknown methods'):
    inr_editing.EditingConfig(methods=('gmn', 'resnet50'))


def test_split_by_image_keeps_every_inr_of_an_image_together():
  n_images, copies = 50, 3
  image = np.tile(np.arange(n_images), copies)  # INR row -> its image; 3 INRs per image
  zoo = types.SimpleNamespace(records={'image': image}, images=np.zeros((n_images, 2, 2, 1)))
  config = inr_editing.EditingConfig(val_fraction=0.1, test_fraction=0.2)
  split = inr_editing.split_by_image(config, zoo)
  rows = np.concatenate([split[k] for k in ('train', 'val', 'test')])
  np.testing.assert_array_equal(np.sort(rows), np.arange(len(image)))  # each row once
  images = {k: set(image[v]) for k, v in split.items()}
  assert [len(images[k]) for k in ('train', 'val', 'test')] == [35, 5, 10]
  assert not images['train'] & images['val'] and not images['train'] & images['test']
  assert not images['val'] & images['test']
  assert all(len(v) == copies * len(images[k]) for k, v in split.items())
  again = inr_editing.split_by_image(config, zoo)
  other = inr_editing.split_by_image(dataclasses.replace(config, seed=1), zoo)
  assert all(np.array_equal(split[k], again[k]) for k in split)
  assert not np.array_equal(split['test'], other['test'])


class _Killed(Exception):
  pass


@pytest.mark.slow  # the end-to-end run
def test_tiny_dilation_run(tmp_path):
  config = inr_editing.EditingConfig.tiny()  # the notebook's, too: compiled once
  before_kill = []

  def kill(name, epoch, record):
    if name == 'gmn':
      before_kill.append(record)
      if epoch == 2:
        raise _Killed

  with pytest.raises(_Killed):
    inr_editing.train_and_evaluate(config, tmp_path, progress=False, on_epoch_end=kill)
  # Started again: the finished methods are loaded, GMN resumes at epoch 3 (of 3).
  flat_mlp = json.loads((tmp_path / 'methods' / 'flat_mlp.json').read_text())
  epochs = []
  results = inr_editing.train_and_evaluate(
      config, tmp_path, progress=False, on_epoch_end=lambda *a: epochs.append(a[:2]))
  assert epochs == [('gmn', 3)]  # nothing else trained
  assert results['methods']['flat_mlp']['val_mse'] == flat_mlp['val_mse']
  gmn = results['methods']['gmn']
  assert gmn['history'][:2] == before_kill and len(gmn['history']) == 3
  assert gmn['best_epoch'] == 1 + min(range(3), key=lambda i: gmn['history'][i]['val_mse'])
  mse = {k: v['test_mse'] for k, v in results['methods'].items()}
  # Held-out images: the equivariant editor must beat leaving the INR unchanged by more than
  # noise (measured: GMN 0.247, flat MLP 0.267, identity 0.271, margin 0.020).
  margin = 3 * results['methods']['identity']['test_se']
  assert mse['gmn'] < mse['identity'] - margin, mse
  assert mse['gmn'] < mse['flat_mlp'], mse
  predictions = np.load(tmp_path / 'predictions.npz')
  assert len(predictions['test_mse_gmn']) == results['split_inrs']['test']
  assert np.isclose(predictions['test_mse_gmn'].mean(), mse['gmn'])
  for name in ('results.md', 'edits.png', 'learning_curves.png'):
    assert (tmp_path / name).stat().st_size > 0
  with pytest.raises(ValueError, match='different run'):
    inr_editing.train_and_evaluate(dataclasses.replace(config, edit='flip'), tmp_path,
                                   progress=False)

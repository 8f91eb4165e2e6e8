"""Data-parallel fit on 4 devices against 1 (run by test_sharding.py with 4 CPU devices).

Corner cases: the last batch (4 of 36 training graphs, batches of 8) leaves two of the four
shards empty; a run killed on 4 devices resumes on 1, and one killed on 1 resumes on a 2 x 2
(data x model, FSDP) mesh, each from its checkpoint of epoch 2 (`CONFIG.checkpoint_every`).
The one-device run is test_fit.py's (`MODEL`, `CONFIG`): its programs come from the
persistent compilation cache when test_fit.py ran first.
"""

import json
import shutil

import jax
import numpy as np
import optax
import pytest

from gmn_jax import mesh as mesh_lib
from gmn_jax.mesh import make_mesh
from gmn_jax.training.fit import TrainConfig, fit, init_params, make_train_step, predict
from tests.training.test_fit import CONFIG as _CONFIG
from tests.training.test_fit import MODEL as _MODEL
from tests.training.test_fit import TRAIN as _TRAIN
from tests.training.test_fit import VAL as _VAL
from tests.training.test_fit import _data, _Interrupt


def _close(a, b):
  assert [h['epoch'] for h in a.history] == [1, 2, 3, 4]
  for x, y in zip(a.history, b.history):
    assert x.keys() == y.keys()
    np.testing.assert_allclose([x[k] for k in x], [y[k] for k in x], rtol=2e-4, atol=1e-5)
  assert a.best_epoch == b.best_epoch


def _kill(epoch, _):
  if epoch == 2:  # the first checkpoint (complete once fit has stopped)
    raise _Interrupt


@pytest.fixture(scope='module')
def one(tmp_path_factory):
  """(data, the one-device run, a copy of its run directory after epoch 2)."""
  assert jax.device_count() == 4
  data, workdir = _data(), tmp_path_factory.mktemp('one')
  snapshot = tmp_path_factory.mktemp('one_after_epoch_2')
  with pytest.raises(_Interrupt):
    fit(_MODEL, data, _TRAIN, _VAL, _CONFIG, workdir, progress=False, on_epoch_end=_kill)
  shutil.copytree(workdir, snapshot, dirs_exist_ok=True)
  return data, fit(_MODEL, data, _TRAIN, _VAL, _CONFIG, workdir, progress=False), snapshot


def test_four_devices_match_one_and_resume_on_one(one, tmp_path):
  """Losses, validation metrics and predictions of 4 devices are those of 1; the checkpoint of
  epoch 2 on 4 devices resumes on 1 device (no mesh)."""
  data, single, _ = one
  with pytest.raises(_Interrupt):
    fit(_MODEL, data, _TRAIN, _VAL, _CONFIG, tmp_path, progress=False, on_epoch_end=_kill,
        mesh=make_mesh())
  logged = [json.loads(line) for line in (tmp_path / 'model/log.jsonl').read_text().splitlines()]
  assert len(logged) == 2  # the first two epochs, trained on 4 devices
  np.testing.assert_allclose([r['train_loss'] for r in logged],
                             [r['train_loss'] for r in single.history[:2]], rtol=2e-4)
  resumed = fit(_MODEL, data, _TRAIN, _VAL, _CONFIG, tmp_path, progress=False)
  _close(resumed, single)
  p1 = predict(_MODEL, single.params, data, _VAL, batch_size=8)
  with jax.set_mesh(make_mesh()):  # what a task calling predict gets under a set mesh
    p4 = predict(_MODEL, resumed.params, data, _VAL, batch_size=8)
  np.testing.assert_allclose(p4, p1, rtol=1e-4, atol=1e-6)
  assert np.std(p4) > 1e-3  # not a constant predictor


def test_one_device_resumes_on_an_fsdp_mesh(one, tmp_path):
  """A run stopped after two epochs on one device resumes on data=2 x model=2 with its
  parameters and Adam moments split over 'model', and ends where the one-device run ends."""
  data, single, after_epoch_2 = one
  resumed = fit(_MODEL, data, _TRAIN, _VAL, _CONFIG, after_epoch_2, progress=False,
                mesh=make_mesh(data=2, model=2))
  _close(resumed, single)
  specs = {str(leaf.sharding.spec) for leaf in jax.tree.leaves(resumed.params)}
  assert any('model' in s for s in specs), specs
  assert all(len(leaf.sharding.device_set) == 4 for leaf in jax.tree.leaves(resumed.params))


def test_a_batch_the_shards_do_not_divide_is_refused(one, tmp_path):
  with pytest.raises(ValueError, match='multiple of 4'):
    fit(_MODEL, one[0], _TRAIN, _VAL, TrainConfig(epochs=1, batch_size=6), tmp_path,
        progress=False, mesh=make_mesh())
  assert not (tmp_path / 'model').exists()  # refused before anything is written


def test_one_train_step_on_four_devices_is_one_devices_step():
  """`fit`'s step on 4 sub-batches of 2 graphs, one per device, has one device's loss and
  updated parameters on the batch of 8, and meets the devices only after the backward pass:
  no collective inside a loop, nothing gathered."""
  data = _data()
  batch = _TRAIN[:8]
  graphs, targets, mask = next(data.batches(batch, 8, data.budget(8)))
  mesh = make_mesh()
  stacked = mesh_lib.place_batch(next(data.batches(batch, 8, data.budget(2), shards=4)), mesh)
  tx = optax.adamw(1e-2)
  params = init_params(_MODEL, jax.random.key(0), graphs)
  state = (params, tx.init(params))
  want = make_train_step(_MODEL, tx)(*state, graphs, targets, mask)
  step = make_train_step(_MODEL, tx, mesh=mesh)
  got = step(*mesh_lib.place_state(state, mesh), *stacked)
  np.testing.assert_allclose(got[2], want[2], rtol=1e-5)
  for a, b, p in zip(jax.tree.leaves(got[0]), jax.tree.leaves(want[0]), jax.tree.leaves(params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert len(a.sharding.device_set) == 4
  assert max(float(np.max(np.abs(a - p))) for a, p in
             zip(jax.tree.leaves(want[0]), jax.tree.leaves(params))) > 1e-3  # a real update
  total, in_loops, gathers = mesh_lib.collectives(
      step.lower(*mesh_lib.place_state(state, mesh), *stacked).compile())
  assert total > 0 and in_loops == 0 and gathers == 0, (total, in_loops, gathers)

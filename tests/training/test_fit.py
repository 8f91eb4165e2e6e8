"""fit(): one compiled step, validation-based selection, and exact resumption after a kill
(before the first checkpoint, right after one while it is still being written, and between
two).

Every regression run here (and in `fit_on_devices.py` and `multihost_run.py`) trains `MODEL`
with `CONFIG` on `_data()`: one train step and one validation program, compiled once for the
whole test run (the persistent compilation cache of `tests/conftest.py` serves every later
`fit`, in this process or a subprocess); the tests differ in what they do around it.
"""

import dataclasses
import functools
import json
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax.training.graph_set import GraphSet
from gmn_jax.training.fit import TrainConfig, fit, predict


class _MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(nn.relu(nn.Dense(4)(x)))


MODEL = gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=1, readout_hidden=8)
# Checkpoints after epochs 2 and 4; the log after every epoch.
CONFIG = TrainConfig(epochs=4, batch_size=8, learning_rate=3e-3, checkpoint_every=2)
TRAIN, VAL = np.arange(0, 36), np.arange(36, 48)  # the last train batch holds 4 graphs


@functools.lru_cache(maxsize=None)
def _data() -> GraphSet:
  """48 random MLPs whose target is a smooth function of their weights (built once per
  process: read it, never change it in place)."""
  n, model, x = 48, _MLP(), jnp.ones((1, 3))
  zoo = jax.jit(jax.vmap(lambda k: model.init(k, x)))(jax.random.split(jax.random.key(0), n))
  zoo = jax.tree.map(lambda l: l * jnp.linspace(0.2, 2.0, n).reshape((n,) + (1,) * (l.ndim - 1)),
                     zoo)
  pg = gmn_jax.trace(model, jax.tree.map(lambda l: l[0], zoo), x)
  norms = sum(jnp.sum(jnp.abs(l).reshape(n, -1), 1) for l in jax.tree.leaves(zoo))
  targets = np.asarray(jax.nn.sigmoid(norms - jnp.median(norms)))
  return GraphSet([pg], [jax.vmap(pg.encode)(zoo)], np.zeros(n, int), np.arange(n), targets)


class _Interrupt(Exception):
  pass


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
  """`(FitResult, run directory)` of `MODEL` trained with `CONFIG` without interruption."""
  workdir = tmp_path_factory.mktemp('straight')
  return fit(MODEL, _data(), TRAIN, VAL, CONFIG, workdir, progress=False), workdir


def _logged(workdir) -> list[dict]:
  return [json.loads(line) for line in (workdir / 'model/log.jsonl').read_text().splitlines()]


@pytest.mark.parametrize('killed_after', [1, pytest.param(2, marks=pytest.mark.slow), 3])
def test_killed_run_resumes_to_the_same_result(straight, tmp_path, killed_after):
  """Killed after epoch 1 (no checkpoint yet: starts over), 2 (its checkpoint still being
  written when the run stops) or 3 (between the checkpoints of epochs 2 and 4: resumes from
  epoch 2 and computes epoch 3 again), the run ends with the uninterrupted run's parameters
  and log."""
  straight, _ = straight
  data = _data()

  def kill(epoch, _):
    if epoch == killed_after:
      raise _Interrupt

  with pytest.raises(_Interrupt):
    fit(MODEL, data, TRAIN, VAL, CONFIG, tmp_path, on_epoch_end=kill, progress=False)
  assert _logged(tmp_path) == straight.history[:killed_after]  # the log of every epoch
  saved = sorted(int(d.name) for d in (tmp_path / 'model/checkpoints').iterdir()
                 if d.name.isdigit()) if (tmp_path / 'model/checkpoints').exists() else []
  assert saved == [e for e in (2, 4) if e <= killed_after]  # complete checkpoints only
  resumed = fit(MODEL, data, TRAIN, VAL, CONFIG, tmp_path, progress=False)
  assert [h['epoch'] for h in resumed.history] == [1, 2, 3, 4]
  assert resumed.history == straight.history
  assert _logged(tmp_path) == straight.history
  assert resumed.best_epoch == straight.best_epoch
  for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(straight.params)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(predict(MODEL, resumed.params, data, VAL, batch_size=8),
                                predict(MODEL, straight.params, data, VAL, batch_size=8))


def test_the_checkpoint_cadence_is_not_part_of_the_run(straight, tmp_path):
  """A finished run's checkpoints hold the best validation epoch's parameters whichever epoch
  that was, and a run resumes with another cadence (which does not change its result)."""
  straight, workdir = straight
  shutil.copytree(workdir, tmp_path, dirs_exist_ok=True)
  again = fit(MODEL, _data(), TRAIN, VAL, dataclasses.replace(CONFIG, checkpoint_every=1),
              tmp_path, progress=False)  # nothing left to train: read back
  assert again.history == straight.history and again.best_epoch == straight.best_epoch
  for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(straight.params)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match='checkpoint_every'):
    TrainConfig(checkpoint_every=0)


def test_select_picks_the_epoch_of_the_chosen_validation_score(straight, tmp_path):
  """By default the kept epoch is the best validation τ; `select='r2'` trains the same epochs
  and keeps the best validation R², and a run directory of one selection refuses the other."""
  straight, workdir = straight
  tau = [h['val_kendall_tau'] for h in straight.history]
  assert straight.best_epoch == int(np.argmax(tau)) + 1
  by_r2 = fit(MODEL, _data(), TRAIN, VAL, dataclasses.replace(CONFIG, select='r2'), tmp_path,
              progress=False)
  assert by_r2.history == straight.history
  r2 = [h['val_r2'] for h in by_r2.history]
  assert by_r2.best_epoch == int(np.argmax(r2)) + 1
  kept = predict(MODEL, by_r2.params, _data(), VAL, batch_size=8)
  assert gmn_jax.training.metrics.r2(_data().targets[VAL], kept) == pytest.approx(max(r2))
  copy = tmp_path / 'copy'
  shutil.copytree(workdir, copy)
  with pytest.raises(ValueError):
    fit(MODEL, _data(), TRAIN, VAL, dataclasses.replace(CONFIG, select='r2'), copy,
        progress=False)
  with pytest.raises(ValueError, match='select'):
    TrainConfig(select='accuracy')


def test_augmented_graphs_compute_the_member_s_function():
  data = _data()
  pg, x = data.templates[0], jnp.linspace(-1.0, 1.0, 3)[None]
  rng = np.random.default_rng(0)
  for i in range(4):
    plain, augmented = data.graph(i), data.graph(i, rng, max_scale=3.0)
    assert not np.allclose(plain.edges['weight'], augmented.edges['weight'])
    np.testing.assert_allclose(_MLP().apply(pg.decode(augmented), x),
                               _MLP().apply(pg.decode(plain), x), rtol=1e-5, atol=1e-6)


def test_a_different_run_in_the_same_directory_is_refused(straight, tmp_path):
  data = _data()
  shutil.copytree(straight[1], tmp_path, dirs_exist_ok=True)  # a finished run of CONFIG
  model, config, train, val = MODEL, CONFIG, TRAIN, VAL
  # A work directory written before GMN had its edge_chunk and edge_shards fields: fields
  # added later at their defaults (the same model) do not count; changed ones do.
  run_json = tmp_path / 'model' / 'run.json'
  saved = json.loads(run_json.read_text())
  for added in ('edge_chunk', 'edge_shards'):
    del saved['model_fields'][added]
  run_json.write_text(json.dumps(saved))
  resumed = fit(model, data, train, val, config, tmp_path, progress=False)  # the same run
  assert resumed.history == straight[0].history
  with pytest.raises(ValueError, match='model_fields differ'):
    fit(model.clone(edge_chunk=64), data, train, val, config, tmp_path, progress=False)
  with pytest.raises(ValueError, match='train_config differ'):
    fit(model, data, train, val, TrainConfig(epochs=3, batch_size=8, learning_rate=3e-3),
        tmp_path, progress=False)
  with pytest.raises(ValueError, match='model_fields differ'):
    fit(model.clone(node_dim=16), data, train, val, config, tmp_path, progress=False)
  with pytest.raises(ValueError, match='train_rows differ'):
    fit(model, data, train[1:], val, config, tmp_path, progress=False)


def test_a_non_finite_loss_stops_training_and_names_the_samples(tmp_path):
  data = _data()
  stacked = data.stacked[0]
  first = np.random.default_rng([CONFIG.seed, 0]).permutation(TRAIN)[:CONFIG.batch_size]
  sick = int(first[3])  # one network of the first batch (the order fit draws) went NaN
  weight = np.array(stacked.edges['weight'])
  weight[sick] = np.nan
  data = GraphSet(data.templates, [stacked._replace(edges={**stacked.edges, 'weight': weight})],
                  data.template_of, data.row_of, data.targets)
  with pytest.raises(FloatingPointError,
                     match=rf'epoch 1, step 1; the batch held samples \[.*\b{sick}\b'):
    fit(MODEL, data, TRAIN, VAL, CONFIG, tmp_path, progress=False)
  assert not (tmp_path / 'model' / 'checkpoints').exists() or not any(
      (tmp_path / 'model' / 'checkpoints').iterdir())


@pytest.mark.slow  # ~70 s: a second GMN fit; the regression fits above stay fast
def test_cross_entropy_selects_the_best_validation_accuracy(tmp_path):
  """Classification: class logits in `globals`, cross-entropy, the epoch of best validation
  accuracy kept; the metrics are exact on a hand-made case."""
  data = _data()
  labels = (data.targets > np.median(data.targets)).astype(np.float32)
  data = GraphSet(data.templates, data.stacked, data.template_of, data.row_of, labels)
  train, val = TRAIN, VAL
  config = TrainConfig(epochs=2, batch_size=12, learning_rate=3e-3, loss='cross_entropy')
  model = gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=1, readout_hidden=8, out_features=2)
  result = fit(model, data, train, val, config, tmp_path, progress=False)
  accuracy = [h['val_accuracy'] for h in result.history]
  assert result.best_epoch == int(np.argmax(accuracy)) + 1
  logits = predict(model, result.params, data, val, loss='cross_entropy')
  assert logits.shape == (12, 2)
  scores = gmn_jax.training.metrics.classification(labels[val], logits)
  assert scores['accuracy'] == max(accuracy)
  exact = gmn_jax.training.metrics.classification(np.array([0, 1]), np.array([[2., 0.], [2., 0.]]))
  assert exact['accuracy'] == 0.5
  np.testing.assert_allclose(exact['cross_entropy'], (np.log1p(np.exp(-2)) + np.log1p(np.exp(2))) / 2)
  with pytest.raises(ValueError, match='unknown loss'):
    TrainConfig(loss='hinge')

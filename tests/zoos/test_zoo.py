"""Zoo generation: the vmapped trainer, shards on disk, resuming, and corruption.

Corner cases: a rerun with the same config (nothing retrained); a deleted shard, a corrupt
shard (flipped bytes), an npz without its json (an interrupted write) and a json that lists
other members: each is named, only it is retrained, and the good shard's files are untouched
(same bytes, same modification time) and the retrained shard is bit-identical; a directory of
another config and one with no zoo; a diverging member (skipped steps, finite snapshots); the
patch-matmul convolution against `lax`'s for SAME/VALID and strides 1/2; members converting
through the tracer and predicting what their metrics say.
"""

import dataclasses
import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax.zoos import datasets as datasets_lib
from gmn_jax.zoos.cnn import small_cnn
from gmn_jax.zoos.cnn import zoo as zoo_lib
from gmn_jax.zoos.cnn import config as zoo_config
from gmn_jax.zoos.cnn import members as members_lib

CONFIG = gmn_jax.ZooConfig.tiny()


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory) -> pathlib.Path:
  directory = tmp_path_factory.mktemp('zoo') / 'tiny'
  gmn_jax.generate_zoo(CONFIG, directory, progress=False)
  return directory


@pytest.fixture
def zoo_copy(tiny_dir, tmp_path) -> pathlib.Path:
  return pathlib.Path(shutil.copytree(tiny_dir, tmp_path / 'copy'))


@pytest.fixture
def count_training(monkeypatch) -> list[int]:
  trained = []
  train = zoo_lib._train_shard

  def counting(config, shard, hparams, data):
    trained.append(shard.index)
    return train(config, shard, hparams, data)

  monkeypatch.setattr(zoo_lib, '_train_shard', counting)
  return trained


def _state(path: pathlib.Path) -> tuple[bytes, int]:
  return path.read_bytes(), path.stat().st_mtime_ns


def test_layout_and_records(tiny_dir):
  zoo = gmn_jax.load_zoo(tiny_dir)
  assert sorted(p.name for p in tiny_dir.iterdir()) == [
      'config.json', 'shard_00000.json', 'shard_00000.npz', 'shard_00001.json',
      'shard_00001.npz']
  assert zoo.widths == (4,) and len(zoo) == 8 * 3 and zoo.input_shape == (8, 8, 1)
  table = zoo.metrics[4]
  np.testing.assert_array_equal(table['member'], np.repeat(np.arange(8), 3))
  np.testing.assert_array_equal(table['epoch'], np.tile([0, 1, 2], 8))
  np.testing.assert_array_equal(table['step'], table['epoch'] * (256 // CONFIG.batch_size))
  for name in zoo_lib.HPARAMS + zoo_lib.METRICS:
    assert len(table[name]) == 24, name
  for name in zoo_lib.METRICS:
    assert np.all(np.isfinite(table[name]))
  assert np.all((table['test_accuracy'] >= 0) & (table['test_accuracy'] <= 1))
  assert set(table['optimizer']) <= set(zoo_config.OPTIMIZERS)
  # At initialisation every member is near chance on 10 classes.
  assert np.all(table['test_accuracy'][table['epoch'] == 0] < 0.35)
  leaves = jax.tree.leaves(zoo.params[4])
  assert all(leaf.shape[0] == 24 and np.all(np.isfinite(leaf)) for leaf in leaves)
  kernel = zoo.params[4]['params']['Conv_1']['kernel']
  assert kernel.shape == (24, 3, 3, 4, 4)
  # Snapshots of one member differ (it trained); members differ (own initialisations).
  assert not np.array_equal(kernel[0], kernel[2]) and not np.array_equal(kernel[0], kernel[3])
  params, metrics = zoo.select(4, 'tanh')
  assert set(metrics['activation']) == {'tanh'}
  assert jax.tree.leaves(params)[0].shape[0] == len(metrics['member'])


def test_members_match_their_metrics_and_trace(tiny_dir):
  """The traced model (lax convolutions) reproduces the recorded test accuracy of every
  snapshot, and encodes/decodes the zoo exactly."""
  zoo = gmn_jax.load_zoo(tiny_dir)
  data = datasets_lib.load_dataset('digits', max_train=256, max_test=128)
  for activation in ('relu', 'tanh'):
    params, metrics = zoo.select(4, activation)
    if not len(metrics['member']):
      continue
    model = zoo.model(4, activation)
    logits = jax.vmap(lambda v: model.apply(v, data.x_test))(params)
    accuracy = np.mean(np.argmax(logits, -1) == data.y_test, axis=-1)
    np.testing.assert_allclose(accuracy, metrics['test_accuracy'], atol=1.5 / 128)
    first = jax.tree.map(lambda a: a[0], params)
    graph = gmn_jax.trace(model, first, zoo.example_input())
    graphs = jax.vmap(graph.encode)(params)
    decoded = jax.vmap(graph.decode)(graphs)
    jax.tree.map(np.testing.assert_array_equal, decoded, params)


def test_export_to_small_cnn_zoo_format(tiny_dir, tmp_path):
  zoo = gmn_jax.load_zoo(tiny_dir)
  out = gmn_jax.write_small_cnn_zoo(zoo, tmp_path / 'public')
  assert np.load(out / 'weights.npy').shape == (24, 386)
  again = gmn_jax.read_small_cnn_zoo(out)
  jax.tree.map(np.testing.assert_array_equal, again.params, zoo.params)
  assert again.input_shape == (8, 8, 1) and again.model_kwargs == zoo.model_kwargs
  for name, values in zoo.metrics[4].items():
    np.testing.assert_array_equal(again.metrics[4][name], values, err_msg=name)


def test_rerun_reuses(tiny_dir, count_training):
  before = {p.name: _state(p) for p in tiny_dir.iterdir()}
  gmn_jax.generate_zoo(CONFIG, tiny_dir, progress=False)
  assert count_training == []
  assert {p.name: _state(p) for p in tiny_dir.iterdir()} == before


@pytest.mark.parametrize('damage', ['delete', 'corrupt', 'no_json', 'wrong_members'])
def test_resume_redoes_only_the_damaged_shard(zoo_copy, count_training, damage):
  npz, meta = zoo_copy / 'shard_00001.npz', zoo_copy / 'shard_00001.json'
  original = npz.read_bytes()
  good = {p.name: _state(zoo_copy / p.name)
          for p in (zoo_copy / 'shard_00000.npz', zoo_copy / 'shard_00000.json')}
  if damage == 'delete':
    npz.unlink()
    meta.unlink()
  elif damage == 'corrupt':
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
  elif damage == 'no_json':
    meta.unlink()
  else:
    record = json.loads(meta.read_text())
    record['members'] = record['members'][::-1]
    meta.write_text(json.dumps(record))
  with pytest.raises(gmn_jax.ZooError, match='shard_00001'):
    gmn_jax.load_zoo(zoo_copy)
  if damage == 'delete':
    gmn_jax.generate_zoo(CONFIG, zoo_copy, progress=False)
  else:
    with pytest.warns(UserWarning, match='shard_00001 is refused'):
      gmn_jax.generate_zoo(CONFIG, zoo_copy, progress=False)
  assert count_training == [1]
  assert {name: _state(zoo_copy / name) for name in good} == good
  assert npz.read_bytes() == original  # deterministic: the same shard again, bit for bit
  assert len(gmn_jax.load_zoo(zoo_copy)) == 24
  assert not [p.name for p in zoo_copy.iterdir() if p.name.startswith('.')]  # no temp files


def test_interrupted_generation_resumes(tmp_path, monkeypatch, tiny_dir):
  directory = tmp_path / 'zoo'
  train = zoo_lib._train_shard
  trained = []

  def interrupted(config, shard, hparams, data):
    if shard.index == 1:
      raise KeyboardInterrupt
    trained.append(shard.index)
    return train(config, shard, hparams, data)

  monkeypatch.setattr(zoo_lib, '_train_shard', interrupted)
  with pytest.raises(KeyboardInterrupt):
    gmn_jax.generate_zoo(CONFIG, directory, progress=False)
  assert trained == [0] and not (directory / 'shard_00001.json').exists()
  with pytest.raises(gmn_jax.ZooError, match='shard_00001 is missing'):
    gmn_jax.load_zoo(directory)
  finished = _state(directory / 'shard_00000.npz')

  def resumed(config, shard, hparams, data):
    trained.append(shard.index)
    return train(config, shard, hparams, data)

  monkeypatch.setattr(zoo_lib, '_train_shard', resumed)
  gmn_jax.generate_zoo(CONFIG, directory, progress=False)
  assert trained == [0, 1] and _state(directory / 'shard_00000.npz') == finished
  for name in ('shard_00000.npz', 'shard_00001.npz'):  # the same zoo as in one go
    assert (directory / name).read_bytes() == (tiny_dir / name).read_bytes()


def test_other_config_is_refused(zoo_copy, count_training):
  other = dataclasses.replace(CONFIG, seed=1)
  with pytest.raises(gmn_jax.ZooError, match='another config'):
    gmn_jax.generate_zoo(other, zoo_copy, progress=False)
  assert count_training == []


def test_no_zoo(tmp_path):
  with pytest.raises(gmn_jax.ZooError, match='no config.json'):
    gmn_jax.load_zoo(tmp_path)
  (tmp_path / 'config.json').write_text('{not json')
  with pytest.raises(gmn_jax.ZooError, match='config.json is corrupt'):
    gmn_jax.load_zoo(tmp_path)


def test_hyperparameters():
  config = dataclasses.replace(gmn_jax.ZooConfig(), num_members=400)
  hp = zoo_lib.sample_hyperparameters(config)
  assert np.all(np.bincount(hp['width'])[list(config.widths)] == 100)  # balanced widths
  sgd = hp['optimizer'] == 'sgd'
  for rows, (lo, hi) in ((~sgd, config.learning_rate), (sgd, config.sgd_learning_rate)):
    assert hp['learning_rate'][rows].min() >= lo and hp['learning_rate'][rows].max() <= hi
  assert set(hp['optimizer']) == set(zoo_config.OPTIMIZERS)
  assert set(hp['activation']) == {'relu', 'tanh'}
  assert set(hp['train_fraction']) == set(config.train_fractions)
  again = zoo_lib.sample_hyperparameters(config)
  for name in hp:
    np.testing.assert_array_equal(hp[name], again[name])
  shards = zoo_lib._plan(config, hp)
  assert [s.width for s in shards] == sorted(s.width for s in shards)
  assert sum(len(s.members) for s in shards) == 400
  assert all(len(s.members) <= config.shard_size for s in shards)


def test_config_json_round_trip():
  config = gmn_jax.ZooConfig(widths=[4, 8], snapshot_epochs=[0, 3])
  assert config.widths == (4, 8) and hash(config)
  assert gmn_jax.ZooConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
  with pytest.raises(ValueError, match='snapshot_epochs'):
    gmn_jax.ZooConfig(snapshot_epochs=(2, 1))
  with pytest.raises(ValueError, match='optimizers'):
    gmn_jax.ZooConfig(optimizers=('lbfgs',))


def test_divergence_is_flagged_and_skipped():
  """A member whose steps blow up keeps finite weights and is flagged."""
  data = datasets_lib.load_dataset('digits', max_train=256, max_test=128)
  hp = {k: np.array(v) for k, v in zoo_lib.sample_hyperparameters(CONFIG).items()}
  hp['optimizer'][:4] = 'sgd'
  hp['learning_rate'][:4] = [1e-2, 1e30, 1e-2, 1e30]
  out = members_lib.train_members(CONFIG, 4, np.arange(4), hp, data)
  np.testing.assert_array_equal(out['diverged'], [False, True, False, True])
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(out['params']))


def test_training_learns():
  """Good hyperparameters beat chance on held-out digits within the tiny config's epochs."""
  data = datasets_lib.load_dataset('digits', max_train=256, max_test=128)
  hp = {k: np.array(v) for k, v in zoo_lib.sample_hyperparameters(CONFIG).items()}
  good = dict(optimizer='adam', learning_rate=1e-2, w_init='he_normal', dropout=0.0,
              train_fraction=1.0, activation='tanh', l2reg=1e-6)
  for name, value in good.items():
    hp[name][:4] = value
  out = members_lib.train_members(CONFIG, 4, np.arange(4), hp, data)
  accuracy = out['metrics']['test_accuracy']
  assert np.all(accuracy[:, -1] > accuracy[:, 0]) and np.median(accuracy[:, -1]) > 0.3


@pytest.mark.parametrize('padding, strides, size', [
    ('SAME', 2, 8), ('SAME', 1, 5), ('VALID', 2, 9), ('VALID', 1, 6)])
def test_conv_as_matmul(padding, strides, size):
  rng = np.random.default_rng(0)  # numpy draws: each jax.random op is a slow CPU compile
  x = rng.normal(size=(2, size, size, 3)).astype(np.float32)
  kernel = rng.normal(size=(3, 3, 3, 5)).astype(np.float32)
  lax_conv = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
      x, k, (strides, strides), padding, dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
  want = lax_conv(x, kernel)
  got = jax.jit(lambda x, k: small_cnn._conv_as_matmul(x, k, (strides, strides), padding))(
      x, kernel)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  model = gmn_jax.SmallCNN(width=4, padding=padding, strides=strides, num_layers=2)
  shapes = jax.eval_shape(model.init, jax.random.key(1), x)
  variables = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)
  fast = model.clone(conv_general_dilated=small_cnn._conv_as_matmul)
  np.testing.assert_allclose(jax.jit(fast.apply)(variables, x),
                             jax.jit(model.apply)(variables, x), rtol=1e-5, atol=1e-5)
  assert model.feature_map_shapes((size, size))[0] == want.shape[1:3]


def test_dropout_rate():
  """Dropout keeps 1 - rate of the activations, rescaled so the mean is kept; off without a
  key. An activation of ones and an identity classifier expose the kept fraction."""
  model = gmn_jax.SmallCNN(width=64, num_classes=64, num_layers=1, padding='SAME', strides=1,
                           activation=jnp.ones_like)
  x = jnp.zeros((4, 8, 8, 1))
  variables = jax.tree.map(jnp.zeros_like, jax.eval_shape(model.init, jax.random.key(0), x))
  variables['params']['Dense_0'] = {'kernel': jnp.eye(64), 'bias': jnp.zeros(64)}
  np.testing.assert_array_equal(jax.jit(model.apply)(variables, x), 1.0)
  apply = jax.jit(lambda v, x, rate: model.apply(v, x, dropout_rate=rate,
                                                 dropout_rng=jax.random.key(1)))
  for rate in (0.0, 0.25, 0.5):
    out = apply(variables, x, rate)
    scale = 256 / (256 - round(rate * 256))
    assert abs(float(jnp.mean(out)) / scale - (1 - rate)) < 0.01
    assert abs(float(jnp.mean(out)) - 1) < 0.02

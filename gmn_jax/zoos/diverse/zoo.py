"""A zoo of diverse architectures (Lim et al. 2024, Table 1): MLPs, 2D CNNs with BatchNorm,
GroupNorm or no norm, 1D CNNs over flattened pixels, DeepSets over pixels, ResNets and ViTs,
each member with a sampled architecture and sampled training, so accuracies spread from chance
to the best.

Per member: the architecture (`NetSpec`: family, hidden size, depth, norm, kernel, patch,
heads) and the training (optimizer Adam or SGD, log-uniform learning rate, log-uniform
decoupled weight decay, label smoothing, dropout, activation, fraction of the training data,
epochs). Members of one `NetSpec` train together in one vmapped program
(`members`); only their final weights are kept (one checkpoint per network).

On disk, as the CNN zoo (`gmn_jax.zoos.cnn.zoo`, whose atomic writes, checksums and config
check this reuses):

  config.json          the `DiverseZooConfig`; another config in the same directory is refused
  shard_00000.npz      one shard (members of one NetSpec): `variables/<path>` [members, ...]
                       (params and BatchNorm statistics), `metrics/<name>` [members],
                       `hparams/<name>` [members], `member`, `diverged`
  shard_00000.json     the NetSpec, member ids, input shape, classes and the npz's sha256,
                       written last: a shard is finished exactly when its json exists and the
                       checksum matches; anything else is trained again (with a warning when
                       a file was there), and the finished shards are kept.

The GMN paper's sampled ranges are not published; the ranges here are ours, chosen so that
8x8 digits in a few epochs give accuracies from chance to ~0.97.
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
from gmn_jax.zoos.cnn.config import ZooError
from gmn_jax.zoos.diverse.models import FAMILIES, NORMS, DiverseNet, NetSpec
from gmn_jax.zoos.diverse.members import METRICS, train_architecture

log = logging.getLogger(__name__)
FORMAT = 'gmn_jax.diverse_zoo/1'
_GENERATE = 'gmn_jax.generate_diverse_zoo(config, directory)'
OPTIMIZERS = ('adam', 'sgd')
ACTIVATIONS = ('relu', 'tanh')
HPARAMS = ('optimizer', 'learning_rate', 'weight_decay', 'label_smoothing', 'dropout',
           'activation', 'train_fraction', 'epochs')


@dataclasses.dataclass(frozen=True)
class DiverseZooConfig:
  """How a diverse zoo is generated. Frozen data: equal configs give identical zoos.

  Every distinct architecture is one compiled training program, and every member of a shard
  runs the largest number of epochs (its own updates stop after its own), so a zoo's time is
  compiles plus members x `epochs[1]` passes over the data. The defaults sample a small grid
  (16 architectures: every family at hidden 8 and 16, the CNN under each of its three norms,
  ResNets and ViTs of one block) with 360 members (60 per family) of 1 to 4 epochs.

  Attributes:
    dataset, max_train, max_test, split_seed: the images (see `gmn_jax.load_dataset`).
    families: which of FAMILIES to sample (uniformly).
    hidden: hidden sizes (uniform); the 'ood' split tests on the largest.
    depths: layers (uniform) of `mlp`, `cnn`, `cnn1d` and `deepsets`.
    block_depths: residual blocks of `resnet` and transformer blocks of `vit` (uniform); each
      block is two convolutions or a whole attention + MLP block, and these two families cost
      the most to compile and train, so they default to one block.
    norms: `cnn` norms (uniform).
    activations: of ACTIVATIONS (uniform); each (architecture, activation) is one graph template.
    kernels: `cnn1d` kernel lengths (uniform).
    patches, heads: `vit` patch sides and head counts (uniform; heads must divide hidden).
    num_members: networks to train.
    epochs: (low, high) inclusive range of training epochs (uniform integers).
    batch_size: examples per step.
    learning_rate, sgd_learning_rate: log-uniform ranges for Adam and for SGD (momentum 0.9).
    weight_decay: log-uniform range (decoupled, as AdamW).
    label_smoothing, dropout: uniform ranges.
    train_fractions: fractions of the training data (uniform choice).
    shard_size: at most this many members per shard (the unit of saving and resuming).
    seed: of the sampled members, initialisations, data order and dropout.
  """

  dataset: str = 'digits'
  max_train: int | None = None
  max_test: int | None = None
  split_seed: int = 0
  families: tuple[str, ...] = FAMILIES
  hidden: tuple[int, ...] = (8, 16)
  depths: tuple[int, ...] = (2,)
  block_depths: tuple[int, ...] = (1,)
  norms: tuple[str, ...] = NORMS
  activations: tuple[str, ...] = ACTIVATIONS
  kernels: tuple[int, ...] = (5,)
  patches: tuple[int, ...] = (2,)
  heads: tuple[int, ...] = (2,)
  num_members: int = 360
  epochs: tuple[int, int] = (1, 4)
  batch_size: int = 32
  learning_rate: tuple[float, float] = (3e-4, 3e-2)
  sgd_learning_rate: tuple[float, float] = (3e-3, 3e-1)
  weight_decay: tuple[float, float] = (1e-6, 1e-2)
  label_smoothing: tuple[float, float] = (0.0, 0.2)
  dropout: tuple[float, float] = (0.0, 0.5)
  train_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
  shard_size: int = 100
  seed: int = 0

  def __post_init__(self):
    for f in dataclasses.fields(self):  # lists (from JSON or a user) -> hashable tuples
      if isinstance(getattr(self, f.name), list):
        object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
    if not self.families or set(self.families) - set(FAMILIES):
      raise ValueError(f'families must be a non-empty subset of {FAMILIES}: {self.families}')
    if not self.norms or set(self.norms) - set(NORMS):
      raise ValueError(f'norms must be a non-empty subset of {NORMS}: {self.norms}')
    if not self.activations or set(self.activations) - set(ACTIVATIONS):
      raise ValueError(f'activations must be a non-empty subset of {ACTIVATIONS}: '
                       f'{self.activations}')
    for name in ('hidden', 'depths', 'block_depths', 'kernels', 'patches', 'heads'):
      if not getattr(self, name) or min(getattr(self, name)) < 1:
        raise ValueError(f'{name} must be non-empty and positive: {getattr(self, name)}')
    if not 1 <= self.epochs[0] <= self.epochs[1]:
      raise ValueError(f'epochs must be a (low, high) range with 1 <= low <= high: {self.epochs}')
    if min(self.num_members, self.shard_size, self.batch_size) < 1:
      raise ValueError('num_members, shard_size and batch_size must be positive')

  def to_json(self) -> dict[str, Any]:
    return {'format': FORMAT, **dataclasses.asdict(self)}

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> 'DiverseZooConfig':
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - fields - {'format'}
    if data.get('format') != FORMAT or unknown:
      raise ZooError(f'not a {FORMAT} config (format {data.get("format")!r}, unknown fields '
                     f'{sorted(unknown)})')
    return cls(**{k: v for k, v in data.items() if k in fields})

  @classmethod
  def varying_cnns(cls, **changes) -> 'DiverseZooConfig':
    """The paper's 'Varying CNNs': 2D CNNs only, of several widths, depths and norms."""
    return dataclasses.replace(cls(families=('cnn',), hidden=(4, 8, 16), depths=(1, 2, 3)),
                               **changes)

  @classmethod
  def tiny(cls, **changes) -> 'DiverseZooConfig':
    """A zoo for tests: a few members of three families, one hidden size each, seconds."""
    return dataclasses.replace(
        cls(families=('mlp', 'cnn', 'deepsets'), hidden=(8,), depths=(1,), norms=('none',),
            num_members=72, epochs=(2, 6), max_test=300, shard_size=24),
        **changes)


def sample_members(config: DiverseZooConfig) -> tuple[list[NetSpec], dict[str, np.ndarray]]:
  """Every member's architecture and training hyperparameters, from `config.seed`. Host-side.

  Returns:
    (specs, hparams): one `NetSpec` per member, and `{'member': int [n], <each of HPARAMS>:
    [n]}` (optimizer and activation as str, epochs as int).
  """
  rng = np.random.default_rng(config.seed)
  n = config.num_members
  pick = lambda options: options[rng.integers(len(options))]
  specs = []
  for _ in range(n):
    family, hidden = pick(config.families), pick(config.hidden)
    depth = pick(config.block_depths if family in ('resnet', 'vit') else config.depths)
    extra = {}
    if family == 'cnn':
      norms = [m for m in config.norms if m != 'group' or hidden % 4 == 0] or ['none']
      extra['norm'] = pick(norms)
    elif family == 'cnn1d':
      extra['kernel'] = pick(config.kernels)
    elif family == 'vit':
      extra['patch'] = pick(config.patches)
      extra['heads'] = pick([h for h in config.heads if hidden % h == 0] or [1])
    specs.append(NetSpec(family, int(hidden), int(depth), **extra))
  log_uniform = lambda lo_hi: np.exp(rng.uniform(np.log(lo_hi[0]), np.log(lo_hi[1]), n))
  optimizer = rng.choice(np.asarray(OPTIMIZERS), n)
  hparams = {
      'member': np.arange(n),
      'optimizer': optimizer,
      'learning_rate': np.where(optimizer == 'sgd', log_uniform(config.sgd_learning_rate),
                                log_uniform(config.learning_rate)),
      'weight_decay': log_uniform(config.weight_decay),
      'label_smoothing': rng.uniform(*config.label_smoothing, n),
      'dropout': rng.uniform(*config.dropout, n),
      'activation': rng.choice(np.asarray(config.activations), n),
      'train_fraction': rng.choice(np.asarray(config.train_fractions, np.float64), n),
      'epochs': rng.integers(config.epochs[0], config.epochs[1] + 1, n),
  }
  return specs, hparams


def _codes(hparams: Mapping[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
  """The numeric per-member values `train_architecture` reads."""
  codes = {k: np.asarray(hparams[k])[index].astype(np.float32) for k in HPARAMS
           if k not in ('optimizer', 'activation', 'epochs')}
  codes['optimizer'] = (np.asarray(hparams['optimizer'])[index] == 'sgd').astype(np.int32)
  codes['activation'] = (np.asarray(hparams['activation'])[index] == 'tanh').astype(np.int32)
  codes['epochs'] = np.asarray(hparams['epochs'])[index].astype(np.int32)
  return codes


@dataclasses.dataclass(frozen=True)
class _Shard:
  index: int
  spec: NetSpec
  members: np.ndarray
  size: int  # members the program trains (one size per spec: one compilation)

  @property
  def name(self) -> str:
    return f'shard_{self.index:05d}'


def _plan(config: DiverseZooConfig, specs: list[NetSpec]) -> list[_Shard]:
  """Shards in order: per NetSpec (sorted by name), its members in near-equal chunks."""
  shards = []
  for spec in sorted(set(specs), key=lambda s: (FAMILIES.index(s.family), s.hidden, s.name)):
    members = np.asarray([i for i, s in enumerate(specs) if s == spec])
    n_shards = -(-len(members) // config.shard_size)
    size = -(-len(members) // n_shards)
    for chunk in np.array_split(members, n_shards):
      shards.append(_Shard(len(shards), spec, chunk, size))
  return shards


def _expected(shard: _Shard) -> dict[str, Any]:
  """What a finished shard's json says of it (`shards_lib.shard_problem` compares)."""
  return {'members': [int(i) for i in shard.members], 'spec': shard.spec.to_json()}


def _write_shard(directory: pathlib.Path, shard: _Shard, result: Mapping[str, Any],
                 hparams: Mapping[str, np.ndarray], data: datasets_lib.ImageDataset):
  arrays = {**shards_lib.flatten(result['variables'], 'variables'),
            **{f'metrics/{k}': v for k, v in result['metrics'].items()},
            **{f'hparams/{k}': np.asarray(hparams[k])[shard.members] for k in HPARAMS},
            'member': shard.members, 'diverged': result['diverged']}
  meta = {'format': FORMAT, 'shard': shard.index, 'spec': shard.spec.to_json(),
          'members': [int(i) for i in shard.members], 'input_shape': list(data.input_shape),
          'num_classes': data.num_classes}
  shards_lib.write_shard(directory, shard.name, arrays, meta)


def generate_diverse_zoo(config: DiverseZooConfig, directory: str | os.PathLike, *,
                         data_dir: str | None = None, progress: bool = True) -> 'DiverseZoo':
  """Trains a diverse zoo into `directory`, shard by shard, resuming what is there. Host-side.

  Finished shards (json present, checksum matching) are kept; missing ones are trained, and
  unfinished or corrupt ones are trained again with a warning naming them. One compilation
  per architecture.

  Raises:
    ZooError: the directory holds a zoo of another config, or its config.json is corrupt.
  """
  directory = pathlib.Path(directory)
  shards_lib.check_config(directory, config, DiverseZooConfig, _GENERATE)
  specs, hparams = sample_members(config)
  todo = shards_lib.unfinished(directory, _plan(config, specs), lambda s: s.name, _expected,
                               zoo='zoo', redo='regenerating it')
  if todo:
    data = datasets_lib.load_dataset(config.dataset, max_train=config.max_train,
                                     max_test=config.max_test, split_seed=config.split_seed,
                                     data_dir=data_dir)
    for i, shard in enumerate(progress_lib.bar(todo, enabled=progress, unit='shard',
                                               desc=f'zoo {directory.name}')):
      tic = time.time()
      result = train_architecture(shard.spec, shard.members, _codes(hparams, shard.members),
                                  data, batch_size=config.batch_size,
                                  max_epochs=config.epochs[1], seed=config.seed,
                                  size=shard.size)
      _write_shard(directory, shard, result, hparams, data)
      log.info('zoo %s: wrote %s (%s, %d members)', directory, shard.name, shard.spec.name,
               len(shard.members))
      progress_lib.line(f'zoo {directory.name}: shard {i + 1}/{len(todo)} ({shard.spec.name}, '
                        f'{len(shard.members)} members) in {time.time() - tic:.0f} s',
                        enabled=progress)
  return load_diverse_zoo(directory)


@dataclasses.dataclass(frozen=True)
class ArchitectureGroup:
  """The members of one architecture: stacked variables and a row-aligned metrics table.

  Attributes:
    spec: the architecture.
    variables: `{'params': ..., ['batch_stats': ...]}` with leaves `[members, ...]`.
    table: column -> `[members]`: `member`, `family`, `hidden`, `depth`, HPARAMS, METRICS,
      `diverged`.
  """

  spec: NetSpec
  variables: Any
  table: dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class DiverseZoo:
  """A diverse zoo in memory: one `ArchitectureGroup` per architecture, in shard order."""

  groups: list[ArchitectureGroup]
  input_shape: tuple[int, ...]
  num_classes: int
  config: DiverseZooConfig

  def __len__(self) -> int:
    return sum(len(g.table['member']) for g in self.groups)

  def model(self, spec: NetSpec, activation: str = 'relu') -> DiverseNet:
    """The Flax module of members of `spec` and `activation`, to trace."""
    return DiverseNet(spec, self.num_classes, activation)

  def example_input(self, batch: int = 1) -> np.ndarray:
    """Zeros `[batch, H, W, C]`: the example input `gmn_jax.trace` needs."""
    return np.zeros((batch, *self.input_shape), np.float32)

  def table(self) -> dict[str, np.ndarray]:
    """Every member's row, groups in order."""
    return {k: np.concatenate([g.table[k] for g in self.groups]) for k in self.groups[0].table}


def load_diverse_zoo(directory: str | os.PathLike) -> DiverseZoo:
  """Reads a finished zoo written by `generate_diverse_zoo`. Host-side.

  Raises:
    ZooError: no zoo there, or a shard is missing, unfinished or corrupt (named in the message;
      `generate_diverse_zoo` with the same config regenerates it and keeps the others).
  """
  directory = pathlib.Path(directory)
  config = shards_lib.check_config(directory, None, DiverseZooConfig, _GENERATE)
  specs, _ = sample_members(config)
  parts: dict[NetSpec, list[dict[str, np.ndarray]]] = {}
  meta: dict[str, Any] = {}
  plan = _plan(config, specs)
  for shard in plan:
    problem, meta = shards_lib.shard_problem(directory, shard.name, _expected(shard))
    if problem:
      raise ZooError(f'zoo {directory}: {shard.name} is {problem} ({len(plan)} shards '
                     'planned); run gmn_jax.generate_diverse_zoo with the same config to '
                     '(re)generate it: finished shards are kept')
    try:
      with np.load(directory / f'{shard.name}.npz', allow_pickle=False) as f:
        parts.setdefault(shard.spec, []).append({k: f[k] for k in f.files})
    except (OSError, ValueError) as e:
      raise ZooError(f'zoo {directory}: {shard.name}.npz is unreadable ({e})') from e
  groups = []
  for spec, arrays in parts.items():
    cat = lambda key, arrays=arrays: np.concatenate([a[key] for a in arrays])
    variables = jax.tree.map(lambda *leaves: np.concatenate(leaves),
                             *[shards_lib.unflatten(a, 'variables') for a in arrays])
    n = len(cat('member'))
    table = {'member': cat('member'), 'family': np.full(n, spec.family),
             'hidden': np.full(n, spec.hidden), 'depth': np.full(n, spec.depth),
             'architecture': np.full(n, spec.name), 'diverged': cat('diverged'),
             **{k: cat(f'hparams/{k}') for k in HPARAMS},
             **{k: cat(f'metrics/{k}') for k in METRICS}}
    groups.append(ArchitectureGroup(spec, variables, table))
  return DiverseZoo(groups, tuple(meta['input_shape']), int(meta['num_classes']), config)

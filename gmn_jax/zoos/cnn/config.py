"""What a zoo is: its config, the sampled hyperparameters' names and values. Host-side.

Hyperparameters follow the Small CNN Zoo (Unterthiner et al. 2020) and are named as its
`config.*` columns, so a zoo exports to that format as it is.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np

from gmn_jax.zoos.cnn.small_cnn import SmallCNN

FORMAT = 'gmn_jax.zoo/1'  # tag of config.json and of each shard's json

OPTIMIZERS = ('adam', 'rmsprop', 'sgd')
ACTIVATIONS = ('relu', 'tanh')
W_INITS = ('he_normal', 'glorot_normal', 'normal', 'truncated_normal')
# Per-member hyperparameters, named as the Small CNN Zoo's `config.*` columns.
HPARAMS = ('optimizer', 'learning_rate', 'l2reg', 'init_std', 'w_init', 'dropout', 'activation',
           'train_fraction')
METRICS = ('train_accuracy', 'train_loss', 'test_accuracy', 'test_loss')
CATEGORIES = {'optimizer': OPTIMIZERS, 'activation': ACTIVATIONS, 'w_init': W_INITS}


class ZooError(ValueError):
  """A zoo on disk is missing, unfinished, corrupt, or was generated with another config."""


@dataclasses.dataclass(frozen=True)
class ZooConfig:
  """How a zoo is generated. Frozen data: equal configs give identical zoos.

  The default is the digits zoo: 1,600 members spread over widths 4, 6, 8 and 12, each saved
  at 5 epochs (8,000 networks). Ranges follow Unterthiner et al. (2020), shifted for short
  training (see `gmn_jax.zoo`'s docstring): `(low, high)` pairs are sampled log-uniformly,
  except `dropout`, which is uniform.

  Attributes:
    dataset: 'digits' (offline) or a TFDS name (see `gmn_jax.load_dataset`).
    max_train, max_test: keep at most this many examples of each split.
    split_seed: seed of the digits train/test split and of subsampling.
    widths: channel widths; members are spread evenly over them (one program per width).
    num_layers, kernel_size, strides, padding: the `SmallCNN` architecture.
    num_members: how many networks to train.
    snapshot_epochs: epochs at which every member is saved (0 = at initialisation); training
      runs to the last one.
    batch_size: examples per step.
    optimizers, activations, w_inits, train_fractions: choices sampled uniformly per member.
    learning_rate: log-uniform range for Adam and RMSProp.
    sgd_learning_rate: log-uniform range for SGD (plain SGD needs larger steps to leave chance
      in a few epochs; set it equal to `learning_rate` for the paper's single range).
    l2reg, init_std: log-uniform ranges.
    dropout: uniform range.
    shard_size: at most this many members per shard (the unit of saving and resuming).
    seed: seed of the hyperparameters, initialisations, data order and dropout.
  """

  dataset: str = 'digits'
  max_train: int | None = None
  max_test: int | None = None
  split_seed: int = 0
  widths: tuple[int, ...] = (4, 6, 8, 12)
  num_layers: int = 3
  kernel_size: int = 3
  strides: int = 2
  padding: str = 'SAME'
  num_members: int = 1600
  snapshot_epochs: tuple[int, ...] = (1, 2, 4, 8, 16)
  batch_size: int = 16
  optimizers: tuple[str, ...] = OPTIMIZERS
  activations: tuple[str, ...] = ACTIVATIONS
  w_inits: tuple[str, ...] = W_INITS
  train_fractions: tuple[float, ...] = (0.1, 0.25, 0.5, 1.0)
  learning_rate: tuple[float, float] = (1e-3, 3e-2)
  sgd_learning_rate: tuple[float, float] = (2e-2, 2e-1)
  l2reg: tuple[float, float] = (1e-8, 1e-2)
  init_std: tuple[float, float] = (5e-2, 0.5)
  dropout: tuple[float, float] = (0.0, 0.5)
  shard_size: int = 100
  seed: int = 0

  def __post_init__(self):
    for f in dataclasses.fields(self):  # lists (e.g. from JSON or a user) -> hashable tuples
      if isinstance(getattr(self, f.name), list):
        object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
    epochs = self.snapshot_epochs
    if not epochs or list(epochs) != sorted(set(epochs)) or epochs[0] < 0:
      raise ValueError(f'snapshot_epochs must be distinct, sorted and >= 0: {epochs}')
    for name, allowed in CATEGORIES.items():
      chosen = getattr(self, name + 's')
      if not chosen or set(chosen) - set(allowed):
        raise ValueError(f'{name}s must be a non-empty subset of {allowed}: {chosen}')
    if not self.widths or min(self.widths) < 1:
      raise ValueError(f'widths must be positive: {self.widths}')
    if min(self.num_members, self.shard_size, self.batch_size) < 1:
      raise ValueError('num_members, shard_size and batch_size must be positive')

  def to_json(self) -> dict[str, Any]:
    return {'format': FORMAT, **dataclasses.asdict(self)}

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> 'ZooConfig':
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields) - {'format'}
    if data.get('format') != FORMAT or unknown:
      raise ZooError(f'not a {FORMAT} config (format {data.get("format")!r}, unknown fields '
                     f'{sorted(unknown)})')
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()
                  if k in fields})

  @classmethod
  def tiny(cls) -> 'ZooConfig':
    """A zoo for tests: 8 members of width 4 in 2 shards, 3 snapshots; trains in seconds."""
    return dataclasses.replace(cls(), widths=(4,), num_members=8, shard_size=4,
                               snapshot_epochs=(0, 1, 2), max_train=256, max_test=128)

  def model(self, width: int, activation='relu', num_classes: int = 10) -> SmallCNN:
    """The Flax module of members of this width (for `gmn_jax.trace`)."""
    return SmallCNN(width=width, num_classes=num_classes, num_layers=self.num_layers,
                    kernel_size=self.kernel_size, strides=self.strides, padding=self.padding,
                    activation=activation)


def default_config() -> ZooConfig:
  """The default digits zoo (`ZooConfig()`)."""
  return ZooConfig()


def tiny_config() -> ZooConfig:
  """The test zoo (`ZooConfig.tiny()`)."""
  return ZooConfig.tiny()


def sample_hyperparameters(config: ZooConfig) -> dict[str, np.ndarray]:
  """Every member's width and hyperparameters, drawn from `config.seed`. Host-side.

  Returns:
    `{'member': int [n], 'width': int [n], <each of HPARAMS>: [n]}` (categorical ones as str).
  """
  rng = np.random.default_rng(config.seed)
  n = config.num_members

  def log_uniform(low_high):
    low, high = low_high
    return np.exp(rng.uniform(np.log(low), np.log(high), n))

  width = rng.permutation(np.resize(np.asarray(config.widths, np.int64), n))
  optimizer = rng.choice(np.asarray(config.optimizers), n)
  learning_rate = np.where(optimizer == 'sgd', log_uniform(config.sgd_learning_rate),
                           log_uniform(config.learning_rate))
  return {
      'member': np.arange(n),
      'width': width,
      'optimizer': optimizer,
      'learning_rate': learning_rate,
      'l2reg': log_uniform(config.l2reg),
      'init_std': log_uniform(config.init_std),
      'w_init': rng.choice(np.asarray(config.w_inits), n),
      'dropout': rng.uniform(*config.dropout, n),
      'activation': rng.choice(np.asarray(config.activations), n),
      'train_fraction': rng.choice(np.asarray(config.train_fractions, np.float64), n),
  }

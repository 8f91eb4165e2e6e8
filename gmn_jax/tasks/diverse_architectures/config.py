"""The diverse-architectures task's config (`DiverseArchitecturesConfig`), its presets and
its settings (full data, 10% of it, out of distribution)."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from gmn_jax.tasks.diverse_architectures.methods import DEFAULT_METHODS, REGISTRY
from gmn_jax.tasks.registry import check_methods
from gmn_jax.training.fit import TrainConfig
from gmn_jax.zoos.diverse import zoo as zoo_lib

SETTINGS = {'full': {}, 'fraction': {'data_fraction': 0.1}, 'ood': {'split': 'ood'}}
# The baselines' own training: learning rate and width picked on the validation split
# (docs/results/diverse_architectures.md, "Tuning the baselines": DMC at 20 epochs, trained 12
# so that the default run fits its 15 minutes; DeepSets, its pooled vector standardised, at 12;
# StatNN at GMN's 8); GMN keeps `train`.
BASELINE_OVERRIDES: dict[str, dict[str, Any]] = {
    'dmc': {'epochs': 12, 'learning_rate': 1e-2, 'hidden': 32},
    'deepsets': {'epochs': 12, 'learning_rate': 3e-3, 'hidden': 32},
    'statnn': {'learning_rate': 1e-2, 'hidden': 32}}


@dataclasses.dataclass(frozen=True)
class DiverseArchitecturesConfig:
  """Everything one run depends on.

  Attributes:
    zoo: the zoo to generate (`DiverseZooConfig()`: diverse; `.varying_cnns()`: CNNs only).
    split: 'id' (networks of every size in train, validation and test) or 'ood' (train and
      validate on hidden sizes below `ood_test_hidden`, test on it).
    ood_test_hidden: the hidden sizes tested in 'ood' (default: the largest).
    data_fraction: share of the training networks kept (the paper's 10% setting: 0.1);
      validation and test are unchanged.
    test_fraction, val_fraction: shares of networks held out for test and for validation.
    methods: keys of `methods.REGISTRY` to train (default: GMN, the paper's baselines DMC
      and DeepSets, and StatNN; NG-GNN and NG-T on request).
    probes: random-noise probe inputs whose per-neuron values GMN, NG-GNN and NG-T read
      (`gmn_jax.graphs.probe`); 0: weights only.
    hidden, layers: width and depth of GMN, NG-GNN and NG-T (baselines are sized from hidden).
    train: optimisation settings of every method without an entry in `method_overrides`.
      The task is scored on R², so each method keeps its epoch of best validation R²
      (`select='r2'`; `fit`'s own default, validation Kendall τ, can keep an early epoch
      whose predictions barely spread).
    method_overrides: per method key, replacements of `train`'s fields (e.g. `learning_rate`,
      `epochs`) and of `hidden`, for that method alone (default: the baselines' picks of the
      validation sweep, `sweep.py`).
    standardize_pooled: parameter-DeepSets reads its pooled vector (a mean over every
      parameter of a network, which barely varies between networks) standardised with its
      statistics over the training networks at initialisation (`run.build_model`); False:
      raw, as the paper's design.
    min_steps: training runs at least this many steps (more epochs where the training set is
      small, e.g. the 10% setting); 0: exactly `train.epochs`.
    max_abs_param: networks with a parameter larger than this (or not finite) are dropped.
    seed: of the split (and, through `train.seed`, of training).
  """

  zoo: zoo_lib.DiverseZooConfig = dataclasses.field(default_factory=zoo_lib.DiverseZooConfig)
  split: str = 'id'
  ood_test_hidden: tuple[int, ...] | None = None
  data_fraction: float = 1.0
  test_fraction: float = 0.3
  val_fraction: float = 0.15
  methods: tuple[str, ...] = DEFAULT_METHODS
  probes: int = 8
  hidden: int = 32
  layers: int = 2
  train: TrainConfig = dataclasses.field(
      default_factory=lambda: TrainConfig(epochs=8, learning_rate=3e-3, select='r2'))
  method_overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(
      default_factory=lambda: dict(BASELINE_OVERRIDES))
  standardize_pooled: bool = True
  min_steps: int = 8
  max_abs_param: float = 1e3
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, 'methods', check_methods(self.methods, REGISTRY))
    if self.split not in ('id', 'ood'):
      raise ValueError(f"split must be 'id' or 'ood', not {self.split!r}")
    if not 0 < self.data_fraction <= 1:
      raise ValueError(f'data_fraction must be in (0, 1]: {self.data_fraction}')
    allowed = {f.name for f in dataclasses.fields(TrainConfig)} | {'hidden'}
    for name, changes in self.method_overrides.items():
      bad = set(changes) - allowed
      if bad:
        raise ValueError(f'method_overrides[{name!r}] may set {sorted(allowed)}, not '
                         f'{sorted(bad)}')

  def for_method(self, name: str) -> 'DiverseArchitecturesConfig':
    """This config as method `name` trains: `train` and `hidden` with its
    `method_overrides`."""
    changes = dict(self.method_overrides.get(name, {}))
    hidden = changes.pop('hidden', self.hidden)
    return dataclasses.replace(self, hidden=hidden,
                               train=dataclasses.replace(self.train, **changes))

  @classmethod
  def default(cls) -> 'DiverseArchitecturesConfig':
    """The main run: the diverse zoo (MLPs, CNNs, 1D CNNs, DeepSets, ResNets, ViTs)."""
    return cls()

  @classmethod
  def varying_cnns(cls) -> 'DiverseArchitecturesConfig':
    """The default run on a zoo of CNNs of varying depth, width and normalisation only."""
    return cls(zoo=zoo_lib.DiverseZooConfig.varying_cnns())

  @classmethod
  def tiny(cls) -> 'DiverseArchitecturesConfig':
    """The test suite's config: three families, GMN alone (the baselines have their own
    tests), seconds of training, yet a real signal."""
    return cls(zoo=zoo_lib.DiverseZooConfig.tiny(), methods=('gmn',),
               hidden=16, layers=2, probes=4, test_fraction=0.4, val_fraction=0.25, min_steps=0,
               train=TrainConfig(epochs=8, batch_size=16))

  def setting(self, name: str) -> 'DiverseArchitecturesConfig':
    """This config in one of SETTINGS ('full', 'fraction': 10% of the data, 'ood')."""
    if name not in SETTINGS:
      raise ValueError(f'unknown setting {name!r}; choose from {sorted(SETTINGS)}')
    return dataclasses.replace(self, **SETTINGS[name])

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out['zoo'] = self.zoo.to_json()
    return out

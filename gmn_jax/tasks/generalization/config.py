"""The accuracy-prediction task's config (`GeneralizationConfig`) and its presets."""

from __future__ import annotations

import dataclasses
from typing import Any

from gmn_jax.tasks.generalization.methods import DEFAULT_METHODS, REGISTRY
from gmn_jax.tasks.registry import check_methods
from gmn_jax.training.fit import TrainConfig
from gmn_jax.zoos.cnn import zoo as zoo_lib
from gmn_jax.zoos.cnn.small_cnn_zoo_architecture import FLAGS

PROTOCOLS = ('all_snapshots', 'published')
TARGETS = ('accuracy', 'rank')


@dataclasses.dataclass(frozen=True)
class GeneralizationConfig:
  """Everything one accuracy-prediction run depends on.

  Attributes:
    zoo: how to generate the zoo (ignored when `zoo_dir` is set).
    zoo_dir: a directory in the public Small CNN Zoo format to read instead of generating.
    zoo_arch: for `zoo_dir`, what the format does not record: `padding`, `strides`,
      `input_shape`, `activation_column` (keyword arguments of `read_small_cnn_zoo`; they
      override an `arch.json` beside layout.csv and the `config.*` columns).
    protocol: 'all_snapshots' (train and test on every snapshot, split by model: our
      default) or 'published' (each run's final checkpoint only, NFN's split from
      `split_file`, NG-GNN and NG-T with Kofinas et al.'s settings; see
      `published_protocol`).
    split_file: for 'published': NFN's index CSV (e.g. `cifar10_split.csv`) or a JSON of row
      lists `{"train": [...], "val": [...], "test": [...]}`; None: a seeded permutation.
    final_step: for 'published': the `step` kept, NFN's filter (86 for the published zoos);
      None: each run's last checkpoint.
    epoch_scale: for 'published': NG-GNN's and NG-T's published 300 epochs are multiplied by
      this (e.g. 0.05 on a CPU); the other methods keep `train.epochs`.
    split: 'id' (train, validate and test on the same widths) or 'ood' (train and validate
      on the narrower widths, test on `ood_test_widths`).
    ood_test_widths: the widths held out for testing in the 'ood' split (default: widest).
    test_fraction: share of models (not snapshots) held out for testing in the 'id' split.
    val_fraction: share of the remaining models used for validation.
    methods: keys of `methods.REGISTRY` to train: 'gmn', 'nggnn', 'scalegmn' (also
      equivariant to the ReLU rescalings and tanh sign flips of each member), 'statnn'
      (StatNN's statistics into an MLP), 'statnn_gbm' (the same statistics into
      scikit-learn's gradient boosting), 'mlp' (flat weights) and 'ngt' (NG-T).
    probes: K, how many random-noise probe inputs each network is run on; the graph
      metanetworks read every neuron's value on them as node features
      (`gmn_jax.graphs.probe`). No data set examples are used. StatNN and the flat MLP read
      weights only. 0: off.
    hidden: width of the graph metanetworks.
    layers: message-passing layers of the graph metanetworks.
    train: optimisation settings shared by every method.
    min_steps: every trained method (except NG-GNN and NG-T under the published protocol,
      which keep the papers' epochs) trains for at least this many steps: its epochs are
      raised to `ceil(min_steps / ceil(n_train / batch_size))` when its training set is small
      (0: `train.epochs` as given).
    targets: what every method regresses: 'accuracy' (the test accuracy itself) or 'rank'
      (its mid-rank share of the training set, `data.RankTargets`: the same Kendall τ for
      the same ranking, a squared loss spread over the bulk of good networks rather than
      dominated by the few that failed); predictions are mapped back to accuracies before
      scoring. Validation scores in the training logs are on the trained scale.
    max_abs_param: rows holding a parameter larger than this in magnitude are dropped as
      diverged, as are rows that are not finite (ReLU members trained with large steps can
      blow up and stay finite, and float32 features of every method overflow on them).
    seed: of the splits.
  """

  zoo: zoo_lib.ZooConfig = dataclasses.field(default_factory=zoo_lib.default_config)
  zoo_dir: str | None = None
  zoo_arch: dict[str, Any] = dataclasses.field(default_factory=dict)
  protocol: str = 'all_snapshots'
  split_file: str | None = None
  final_step: int | None = None
  epoch_scale: float = 1.0
  split: str = 'id'
  ood_test_widths: tuple[int, ...] | None = None
  test_fraction: float = 0.5
  val_fraction: float = 0.2
  methods: tuple[str, ...] = DEFAULT_METHODS
  probes: int = 16
  hidden: int = 32
  layers: int = 3
  train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=12))
  min_steps: int = 0
  targets: str = 'accuracy'
  max_abs_param: float = 1e3
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, 'methods', check_methods(self.methods, REGISTRY))
    if self.split not in ('id', 'ood'):
      raise ValueError(f"split must be 'id' or 'ood', not {self.split!r}")
    if self.targets not in TARGETS:
      raise ValueError(f'targets must be one of {TARGETS}, not {self.targets!r}')
    if self.min_steps < 0:
      raise ValueError(f'min_steps must be >= 0, not {self.min_steps}')
    if self.protocol not in PROTOCOLS:
      raise ValueError(f'protocol must be one of {PROTOCOLS}, not {self.protocol!r}')
    if self.protocol == 'published' and self.split == 'ood':
      raise ValueError("the published protocol has its own split; drop split='ood'")
    if self.protocol != 'published' and (self.split_file or self.final_step is not None):
      raise ValueError("split_file and final_step belong to protocol='published'")
    unknown = set(self.zoo_arch) - set(FLAGS)
    if unknown or (self.zoo_arch and self.zoo_dir is None):
      raise ValueError(f'zoo_arch takes {sorted(FLAGS)} and needs zoo_dir; got {self.zoo_arch}')

  @classmethod
  def default(cls) -> 'GeneralizationConfig':
    """The main run: the digits zoo, the default methods, minutes on a CPU."""
    return cls()

  @classmethod
  def quick(cls) -> 'GeneralizationConfig':
    """A smoke run of a minute or two."""
    zoo = dataclasses.replace(zoo_lib.default_config(), num_members=120)
    return cls(zoo=zoo, train=TrainConfig(epochs=4), hidden=16, layers=2)

  @classmethod
  def tiny(cls) -> 'GeneralizationConfig':
    """The test suite's config: seconds on a CPU, yet a real signal."""
    zoo = dataclasses.replace(zoo_lib.default_config(), widths=(4,), num_members=48,
                              shard_size=48, snapshot_epochs=(0, 1, 3, 6), max_train=512,
                              max_test=256)
    return cls(zoo=zoo, train=TrainConfig(epochs=8, batch_size=16), hidden=16, layers=2,
               methods=('gmn', 'statnn', 'statnn_gbm'))

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out['zoo'] = self.zoo.to_json()
    return out

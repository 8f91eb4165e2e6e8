"""The INR-editing task's config (`EditingConfig`) and its presets."""

from __future__ import annotations

import dataclasses

import numpy as np

from gmn_jax.tasks.inr_editing.image_edits import apply_edit
from gmn_jax.tasks.inr_editing.methods import REGISTRY
from gmn_jax.tasks.registry import check_methods
from gmn_jax.zoos.inr import zoo as inr_zoo_lib


@dataclasses.dataclass(frozen=True)
class EditingConfig:
  """Everything one INR-editing run depends on.

  Attributes:
    zoo: the INR zoo (fitted once into `workdir/zoo`, then reused).
    edit: 'dilate', 'contrast' or 'flip' (`image_edits.EDITS`).
    methods: keys of `methods.REGISTRY` to train.
    val_fraction, test_fraction: shares of the images held out (split by image).
    hidden: node and edge width of the metanetworks.
    layers: their message-passing layers.
    flat_hidden: widths of the flat MLP.
    epochs, batch_size, learning_rate, weight_decay, clip_norm: AdamW with a linear warm-up
      and cosine decay (clip 1.0, as the papers edit with).
    n_pictures: held-out images shown in `edits.png`.
    seed: of the split and of training.
  """

  zoo: inr_zoo_lib.InrZooConfig = dataclasses.field(
      default_factory=lambda: inr_zoo_lib.InrZooConfig(max_images=800, shard_size=400))
  edit: str = 'dilate'
  methods: tuple[str, ...] = ('identity', 'flat_mlp', 'gmn', 'nggnn')
  val_fraction: float = 0.1
  test_fraction: float = 0.2
  hidden: int = 32
  layers: int = 2
  flat_hidden: tuple[int, ...] = (256, 256)
  epochs: int = 8
  batch_size: int = 32
  learning_rate: float = 1e-3
  weight_decay: float = 5e-4
  clip_norm: float = 1.0
  n_pictures: int = 6
  seed: int = 0

  def __post_init__(self):
    object.__setattr__(self, 'methods', check_methods(self.methods, REGISTRY))
    apply_edit(self.edit, np.zeros((1, 3, 3, 1), np.float32), 0.0, 1.0)  # validates the name
    if not 0 < self.val_fraction + self.test_fraction < 1:
      raise ValueError('val_fraction + test_fraction must be in (0, 1)')

  @classmethod
  def default(cls) -> 'EditingConfig':
    """The main run: INRs of 800 MNIST digits, dilation, identity, flat MLP, GMN, NG-GNN."""
    return cls()

  @classmethod
  def tiny(cls, **overrides) -> 'EditingConfig':
    """The test suite's (and the notebook's) config: INRs of 128 8x8 digits (the tiny INR
    zoo's first 128, one shard), small models, 3 epochs."""
    zoo = dataclasses.replace(inr_zoo_lib.InrZooConfig.tiny(), max_images=128, shard_size=128)
    return cls(**{**dict(zoo=zoo, hidden=16, layers=2,
                         flat_hidden=(64, 64), epochs=3, batch_size=16, learning_rate=3e-3,
                         methods=('identity', 'flat_mlp', 'gmn'), n_pictures=4), **overrides})

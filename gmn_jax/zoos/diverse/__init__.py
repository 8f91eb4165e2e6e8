"""The zoo of diverse architectures: MLPs, 2D CNNs, 1D CNNs, DeepSets, ResNets and ViTs.

`models` defines the families (`NetSpec` -> `DiverseNet`); `members` trains the members of
one architecture in one vmapped program; `zoo` generates, resumes and loads the zoo.
"""

from gmn_jax.zoos.diverse.models import DiverseNet, NetSpec
from gmn_jax.zoos.diverse.zoo import (DiverseZoo, DiverseZooConfig, generate_diverse_zoo,
                                      load_diverse_zoo)

__all__ = ['DiverseNet', 'DiverseZoo', 'DiverseZooConfig', 'NetSpec', 'generate_diverse_zoo',
           'load_diverse_zoo']

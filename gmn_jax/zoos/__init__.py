"""Stage 3, zoos: the networks metanetworks read, and the data those networks learned.

`datasets` loads images (scikit-learn's digits offline; TFDS sets prepared beforehand);
`small_cnn` is the zoo's CNN; `config` samples each member's hyperparameters; `training` trains
a shard of members in one vmapped, jitted program; `zoo` generates, checksums, resumes and loads
zoos; `small_cnn_zoo` reads and writes the public Small CNN Zoo format; `diverse_models`,
`diverse_training` and `diverse_zoo` are the zoo of diverse architectures (MLPs, CNNs, 1D CNNs,
DeepSets, ResNets, ViTs). Independent of the
metanetworks: a zoo is parameters and metrics, turned into graphs by `graphs`.
"""

from gmn_jax.zoos.datasets import ImageDataset, load_dataset
from gmn_jax.zoos.diverse_models import DiverseNet, NetSpec
from gmn_jax.zoos.diverse_zoo import (DiverseZoo, DiverseZooConfig, generate_diverse_zoo,
                                      load_diverse_zoo)
from gmn_jax.zoos.small_cnn_zoo import read_small_cnn_zoo, write_small_cnn_zoo
from gmn_jax.zoos.zoo import SmallCNN, Zoo, ZooConfig, ZooError, generate_zoo, load_zoo

__all__ = [
    'DiverseNet', 'DiverseZoo', 'DiverseZooConfig', 'NetSpec', 'generate_diverse_zoo',
    'load_diverse_zoo',
    'ImageDataset', 'SmallCNN', 'Zoo', 'ZooConfig', 'ZooError', 'generate_zoo', 'load_dataset',
    'load_zoo', 'read_small_cnn_zoo', 'write_small_cnn_zoo',
]

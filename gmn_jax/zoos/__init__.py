"""Stage 3, zoos: the networks metanetworks read, and the data those networks learned.

`datasets` loads images (scikit-learn's digits offline; TFDS sets prepared beforehand);
`small_cnn` is the zoo's CNN; `config` samples each member's hyperparameters; `training` trains
a shard of members in one vmapped, jitted program; `zoo` generates, checksums, resumes and loads
zoos; `siren` fits SIRENs (implicit neural representations) to images and `inr_zoo` stores
zoos of them (both through `shards`, the shared on-disk layout); `published_inrs` reads
DWSNets' published INR files without torch; `small_cnn_zoo` reads and
writes the public Small CNN Zoo format, and `small_cnn_zoo_architecture` settles and checks
what that format does not record; `diverse_models`, `diverse_training` and `diverse_zoo` are
the zoo of diverse architectures (MLPs, CNNs, 1D CNNs, DeepSets, ResNets, ViTs). Independent
of the metanetworks: a zoo is parameters and metrics, turned into graphs by `graphs`.
"""

from gmn_jax.zoos.datasets import ImageDataset, load_dataset
from gmn_jax.zoos.diverse_models import DiverseNet, NetSpec
from gmn_jax.zoos.diverse_zoo import (DiverseZoo, DiverseZooConfig, generate_diverse_zoo,
                                      load_diverse_zoo)
from gmn_jax.zoos.inr_zoo import (InrZoo, InrZooConfig, generate_inr_zoo, load_images,
                                  load_inr_zoo)
from gmn_jax.zoos.published_inrs import (PublishedInrs, load_dwsnets_inrs, load_nfn_sirens,
                                          read_torch_state_dict)
from gmn_jax.zoos.siren import CONVENTIONS, Siren, fit_sirens, render
from gmn_jax.zoos.small_cnn_zoo import read_small_cnn_zoo, write_small_cnn_zoo
from gmn_jax.zoos.small_cnn_zoo_architecture import ZooArchitecture
from gmn_jax.zoos.zoo import SmallCNN, Zoo, ZooConfig, ZooError, generate_zoo, load_zoo

__all__ = [
    'CONVENTIONS', 'InrZoo', 'InrZooConfig', 'Siren', 'fit_sirens', 'generate_inr_zoo',
    'load_images', 'load_inr_zoo', 'render',
    'PublishedInrs', 'load_dwsnets_inrs', 'load_nfn_sirens', 'read_torch_state_dict',
    'DiverseNet', 'DiverseZoo', 'DiverseZooConfig', 'NetSpec', 'generate_diverse_zoo',
    'load_diverse_zoo',
    'ImageDataset', 'SmallCNN', 'Zoo', 'ZooArchitecture', 'ZooConfig', 'ZooError',
    'generate_zoo', 'load_dataset', 'load_zoo', 'read_small_cnn_zoo', 'write_small_cnn_zoo',
]

"""Stage 3, zoos: the networks metanetworks read, and the data those networks learned.

By kind: `cnn` (the Small CNN Zoo: generated, or read from its public format), `inr`
(SIRENs fitted to images, and the published INR sets) and `diverse` (MLPs, CNNs, 1D CNNs,
DeepSets, ResNets, ViTs). Shared by them: `datasets` loads images (scikit-learn's digits
offline; TFDS sets prepared beforehand) and `shards` is the on-disk layout of a zoo written
shard by shard. Independent of the metanetworks: a zoo is parameters and metrics, turned into
graphs by `graphs`.
"""

from gmn_jax.zoos import cnn, datasets, diverse, inr, shards
from gmn_jax.zoos.cnn import (SmallCNN, Zoo, ZooArchitecture, ZooConfig, ZooError, generate_zoo,
                              load_zoo, read_small_cnn_zoo, write_small_cnn_zoo)
from gmn_jax.zoos.datasets import ImageDataset, load_dataset
from gmn_jax.zoos.diverse import (DiverseNet, DiverseZoo, DiverseZooConfig, NetSpec,
                                  generate_diverse_zoo, load_diverse_zoo)
from gmn_jax.zoos.inr import (CONVENTIONS, InrZoo, InrZooConfig, PublishedInrs, Siren,
                              export_dwsnets, fit_sirens, generate_inr_zoo, load_dwsnets_inrs,
                              load_images,
                              load_inr_zoo, load_nfn_sirens, read_torch_state_dict, render)

__all__ = [
    'cnn', 'datasets', 'diverse', 'inr', 'shards',
    'CONVENTIONS', 'InrZoo', 'InrZooConfig', 'Siren', 'fit_sirens', 'generate_inr_zoo',
    'load_images', 'load_inr_zoo', 'render',
    'PublishedInrs', 'export_dwsnets', 'load_dwsnets_inrs', 'load_nfn_sirens', 'read_torch_state_dict',
    'DiverseNet', 'DiverseZoo', 'DiverseZooConfig', 'NetSpec', 'generate_diverse_zoo',
    'load_diverse_zoo',
    'ImageDataset', 'SmallCNN', 'Zoo', 'ZooArchitecture', 'ZooConfig', 'ZooError',
    'generate_zoo', 'load_dataset', 'load_zoo', 'read_small_cnn_zoo', 'write_small_cnn_zoo',
]

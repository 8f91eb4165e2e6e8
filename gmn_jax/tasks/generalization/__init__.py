"""Predicting a CNN's test accuracy from its weights (Unterthiner et al. 2020; Lim et al. 2024,
§5.1): zoo -> parameter graphs -> metanetworks and baselines -> report.

`train_and_evaluate(config, workdir)` generates (or reads) a zoo of small CNNs, encodes every
snapshot, splits by model, trains the methods of `config.methods` (keys of `REGISTRY`) on the
same split and writes `results.json`, `results.md`, `predictions.csv` and plots to `workdir`.
Every stage is cached or checkpointed, so a killed run started again resumes where it stopped.

Modules: `config` (`GeneralizationConfig` and its presets), `methods` (the registry), `data`
(the zoo, its encoding, the splits and the targets the methods train on), `baselines`
(StatNN's gradient-boosted trees, the flat MLP's architecture), `published_protocol` (the
papers' split and settings), `variants` (named zoos unlike the default: `zoo_variant`),
`run`. The report is `gmn_jax.training.report`.
"""

from gmn_jax.tasks.generalization import published_protocol
from gmn_jax.tasks.generalization.config import PROTOCOLS, TARGETS, GeneralizationConfig
from gmn_jax.tasks.generalization.data import (Data, RankTargets, encode_zoo, split_by_model,
                                               task_zoo)
from gmn_jax.tasks.generalization.methods import DEFAULT_METHODS, METHODS, REGISTRY
from gmn_jax.tasks.generalization.run import train_and_evaluate
from gmn_jax.tasks.generalization.variants import ZOO_VARIANTS, zoo_variant

Config = GeneralizationConfig

__all__ = ['DEFAULT_METHODS', 'METHODS', 'PROTOCOLS', 'REGISTRY', 'TARGETS', 'ZOO_VARIANTS',
           'Config', 'Data', 'GeneralizationConfig', 'RankTargets', 'encode_zoo',
           'published_protocol', 'split_by_model', 'task_zoo', 'train_and_evaluate',
           'zoo_variant']

"""Predicting test accuracy across diverse architectures (Lim et al. 2024, Table 1): one
metanetwork reads MLPs, 2D CNNs (BatchNorm / GroupNorm / none), 1D CNNs, DeepSets, ResNets and
ViTs at once.

`train_and_evaluate(config, workdir)` generates (or reuses) a diverse zoo, traces each
architecture once and encodes its members in one vmapped call, splits by network, trains the
methods of `config.methods` (keys of `REGISTRY`: GMN, NG-GNN, NG-T and the baselines DMC,
parameter-DeepSets and StatNN) on the same split with one padding budget, and writes
`results.json` (R² and Kendall τ overall and per family), `results.md`, `predictions.csv` and
plots. Settings (`SETTINGS`): all training data, 10% of it, or 'ood' (train on the smaller
hidden sizes, test on the largest). `run_settings` runs several settings and seeds on one
encoding of the zoo and writes `summary.md` (mean ± sd).

Modules: `config`, `methods` (the registry), `data` (encoding and split), `run`, `report`,
`sweep` (the validation sweep of learning rate and width), `curve` (learning curves over zoo
size).
"""

from gmn_jax.tasks.diverse_architectures import curve, report, sweep
from gmn_jax.tasks.diverse_architectures.config import SETTINGS, DiverseArchitecturesConfig
from gmn_jax.tasks.diverse_architectures.data import (PACKING_SLACK, encode_zoo,
                                                      load_and_encode, split)
from gmn_jax.tasks.diverse_architectures.methods import DEFAULT_METHODS, METHODS, REGISTRY
from gmn_jax.tasks.diverse_architectures.run import evaluate, run_settings, train_and_evaluate
from gmn_jax.training.encoding import Encoded

Config = DiverseArchitecturesConfig

__all__ = ['DEFAULT_METHODS', 'curve', 'METHODS', 'PACKING_SLACK', 'REGISTRY', 'SETTINGS', 'Config',
           'DiverseArchitecturesConfig', 'Encoded', 'encode_zoo', 'evaluate', 'load_and_encode',
           'report', 'run_settings', 'split', 'sweep', 'train_and_evaluate']

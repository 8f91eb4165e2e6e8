"""Stage 5, tasks: one module per experiment of the papers, each with a config dataclass and
`train_and_evaluate(config, workdir)`, thin `python -m experiments.<task>` entries on top.

- `generalization`: predict a CNN's test accuracy from its weights (zoo → graphs → GMN, NG-GNN
  and baselines → report); `published_protocol`: the papers' split and settings for it.
- `diverse_architectures`: the same across MLPs, CNNs, 1D CNNs, DeepSets, ResNets and ViTs
  at once (GMN paper, Table 1), with DMC and parameter-DeepSets baselines (`diverse_report`).
- `inr_classification`: classify SIRENs fitted to images from their weights (INR zoo → graphs
  → GMN, NG-GNN, NG-T and baselines → report, `inr_report`).
- `inr_editing`: edit INRs through their weights (dilation, contrast, flip; `image_edits`
  holds the targets, `inr_editing_report` the report).
- `learning_to_optimize`: meta-train learned optimizers (graph metanetworks on the optimizee's
  graph, per-parameter MLP and LSTM) on a family of optimizees (`optimizees`,
  `meta_training`) and compare them with tuned Adam and SGD on held-out tasks.
"""

from gmn_jax.tasks import (diverse_architectures, generalization, image_edits,
                           inr_classification, inr_editing, learning_to_optimize,
                           published_protocol)
from gmn_jax.tasks.inr_editing import EditingConfig

__all__ = ['EditingConfig', 'diverse_architectures', 'generalization', 'image_edits',
           'inr_classification', 'inr_editing', 'learning_to_optimize', 'published_protocol']

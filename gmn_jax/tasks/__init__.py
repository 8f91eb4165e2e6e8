"""Stage 5, tasks: one module per experiment of the papers, each with a config dataclass and
`train_and_evaluate(config, workdir)`, thin `python -m experiments.<task>` entries on top.

- `generalization`: predict a CNN's test accuracy from its weights (zoo → graphs → GMN, NG-GNN
  and baselines → report); `published_protocol`: the papers' split and settings for it.
- `inr_classification`: classify SIRENs fitted to images from their weights (INR zoo → graphs
  → GMN, NG-GNN, NG-T and baselines → report, `inr_report`).
"""

from gmn_jax.tasks import generalization, inr_classification, published_protocol

__all__ = ['generalization', 'inr_classification', 'published_protocol']

"""Stage 5, tasks: one module per experiment of the papers, each with a config dataclass and
`train_and_evaluate(config, workdir)`, thin `python -m experiments.<task>` entries on top.

- `generalization`: predict a CNN's test accuracy from its weights (zoo → graphs → GMN, NG-GNN
  and baselines → report); `published_protocol`: the papers' split and settings for it.
"""

from gmn_jax.tasks import generalization, published_protocol

__all__ = ['generalization', 'published_protocol']

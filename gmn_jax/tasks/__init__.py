"""Stage 5, tasks: one module per experiment of the papers, each with a config dataclass and
`train_and_evaluate(config, workdir)`, thin `python -m experiments.<task>` entries on top.

- `generalization`: predict a CNN's test accuracy from its weights (zoo → graphs → GMN, NG-GNN
  and baselines → report).
- `learning_to_optimize`: meta-train learned optimizers (graph metanetworks on the optimizee's
  graph, per-parameter MLP and LSTM) on a family of optimizees (`optimizees`,
  `meta_training`) and compare them with tuned Adam and SGD on held-out tasks.
"""

from gmn_jax.tasks import generalization, learning_to_optimize

__all__ = ['generalization', 'learning_to_optimize']

"""Stage 5, tasks: one module per experiment of the papers, each with a config dataclass and
`train_and_evaluate(config, workdir)`, thin `python -m experiments.<task>` entries on top.

- `generalization`: predict a CNN's test accuracy from its weights (zoo → graphs → GMN, NG-GNN
  and baselines → report).
- `diverse_architectures`: the same across MLPs, CNNs, 1D CNNs, DeepSets, ResNets and ViTs
  at once (GMN paper, Table 1), with DMC and parameter-DeepSets baselines (`diverse_report`).
"""

from gmn_jax.tasks import diverse_architectures, generalization

__all__ = ['diverse_architectures', 'generalization']

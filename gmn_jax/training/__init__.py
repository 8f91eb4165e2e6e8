"""Stage 4, training metanetworks: a `GraphSet` of encoded graphs with targets in, a trained
metanetwork, its per-epoch log, checkpoints and predictions out.

`graph_set` holds graphs of one or more architectures with their targets and draws augmented,
padded batches; `fit` trains with optax (one jitted step, resumable from a `run_directory`:
`run.json`, orbax checkpoints, `log.jsonl`) and `predict` reads out, on one device or
data-parallel over a device mesh (`gmn_jax.mesh`); `init_program.init_params` is a model's Flax
`init` compiled as one program with its random draws batched (what `fit` starts from);
`metrics` scores predictions (Kendall τ, R²); `losses` holds training losses beyond the
squared error (a pairwise ranking term, `TrainConfig.rank_weight`); `report` writes tables and
plots.
`learned_optimizer` is an optax transformation whose update is read off a metanetwork (or a
per-parameter MLP/LSTM, `update_rules`) run on the optimizee's parameter graph, with the
per-parameter inputs of `optimizer_features`. The tasks in `gmn_jax.tasks` are built on these.
"""

from gmn_jax.training import losses, metrics, report
from gmn_jax.training.fit import FitResult, TrainConfig, fit, predict
from gmn_jax.training.init_program import init_params
from gmn_jax.training.graph_set import GraphSet
from gmn_jax.training.run_directory import RunDirectory, check_run
from gmn_jax.training.learned_optimizer import LearnedOptimizer, LearnedOptimizerState
from gmn_jax.training.update_rules import GraphRule, PerParameterLSTM, PerParameterMLP

__all__ = ['FitResult', 'GraphRule', 'GraphSet', 'LearnedOptimizer', 'LearnedOptimizerState',
           'PerParameterLSTM', 'PerParameterMLP', 'RunDirectory', 'TrainConfig', 'check_run',
           'fit', 'init_params', 'losses', 'metrics', 'predict', 'report']

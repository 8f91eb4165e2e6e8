"""The learning-to-optimize task's meta-training families and the ablation's row configs:
the mixed family spans both families and several sizes without any held-out architecture,
`--family` reaches the config, `--also` adds single stabilisers to a row, `--stabilisers.base`
reaches every row."""

import dataclasses

from benchmarks import l2o_ablation
from experiments import learning_to_optimize as experiment
from gmn_jax.tasks.learning_to_optimize import TRAIN_FAMILIES, LearningToOptimizeConfig


def _arch(spec):
  return spec.family, spec.width, spec.depth


def test_mixed_family_spans_cnns_and_mlps_and_holds_out_the_test_architectures():
  mixed = TRAIN_FAMILIES['mixed']
  assert {s.family for s in mixed} == {'cnn', 'mlp'}
  assert len({s.width for s in mixed}) >= 3 and len({s.depth for s in mixed}) >= 2
  assert len(set(mixed)) == len(mixed)
  config = LearningToOptimizeConfig()
  (_, seen), *held_out = config.test_tasks
  assert seen in mixed  # the first test task is the training architecture on new seeds
  for name, spec in held_out:
    assert _arch(spec) not in {_arch(s) for s in mixed}, name
  assert TRAIN_FAMILIES['single'] == (seen,)


def test_family_flag_replaces_the_training_tasks_only():
  default = experiment.config(experiment.parser().parse_args([]))
  mixed = experiment.config(experiment.parser().parse_args(['--family', 'mixed']))
  assert mixed.train_tasks == TRAIN_FAMILIES['mixed']
  assert dataclasses.replace(mixed, train_tasks=default.train_tasks) == default


def test_also_adds_single_stabilisers_to_a_row():
  base = LearningToOptimizeConfig()
  plain = l2o_ablation.row_config(base, 'small_step', 4)
  assert not plain.stabilisers.time_features and plain.meta.truncations == 1
  both = l2o_ablation.row_config(base, 'small_step', 4, also=('time', 'truncations'))
  assert both.stabilisers.time_features and both.meta.truncations == 4
  assert both.stabilisers.features == 'log_sign' and both.stabilisers.step_clip is None
  assert both.stabilisers.step_scale == 1e-3
  assert l2o_ablation.row_config(base, 'time', 4).stabilisers.features == 'tensor'


def test_the_base_flag_reaches_every_row():
  args = experiment.parser().parse_args(['--stabilisers.base', 'adam',
                                         '--stabilisers.base-rate', '0.003'])
  base = experiment.config(args)
  for row in l2o_ablation.ROWS:
    stab = l2o_ablation.row_config(base, row, 4).stabilisers
    assert (stab.base, stab.base_rate) == ('adam', 0.003), row
  assert l2o_ablation.row_config(LearningToOptimizeConfig(), 'none', 4).stabilisers.base == 'none'

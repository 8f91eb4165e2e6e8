"""The named zoo variants: each differs from the default zoo in what its name says, its CNN
fits its images, the flag picks it (other flags override it), and a tiny variant generates,
reads back and splits as the task reads it."""

import dataclasses
import math

import numpy as np
import pytest

from experiments import flags
from experiments import generalization as experiment
from gmn_jax.tasks.generalization import GeneralizationConfig, data as data_lib
from gmn_jax.tasks.generalization import run as run_lib
from gmn_jax.tasks.generalization.variants import ZOO_VARIANTS, tiny_variant, zoo_variant
from gmn_jax.zoos.cnn.config import ZooConfig

SPATIAL = {'digits': (8, 8), 'mnist5k': (28, 28)}


@pytest.mark.parametrize('name', sorted(ZOO_VARIANTS))
def test_each_variant_differs_from_the_default_and_its_cnn_fits(name):
  config, default = zoo_variant(name), GeneralizationConfig()
  changed = {f.name for f in dataclasses.fields(ZooConfig)
             if getattr(config.zoo, f.name) != getattr(default.zoo, f.name)}
  assert set(ZOO_VARIANTS[name]['zoo']) <= changed | {'snapshot_epochs'}
  assert config.zoo.num_members < default.zoo.num_members
  assert dataclasses.replace(config, zoo=default.zoo) == default  # only the zoo changes
  for width in config.zoo.widths:
    shapes = config.zoo.model(width).feature_map_shapes(SPATIAL[config.zoo.dataset])
    assert all(min(s) >= 1 for s in shapes), shapes


def test_the_flag_picks_the_variant_and_other_flags_override_it():
  args = experiment.parser().parse_args(['--zoo-variant', 'wide', '--members', '40'])
  config = flags.config(args, preset=lambda: zoo_variant(args.zoo_variant))
  assert config == dataclasses.replace(
      zoo_variant('wide'), zoo=dataclasses.replace(zoo_variant('wide').zoo, num_members=40))
  with pytest.raises(ValueError, match='unknown zoo variant'):
    zoo_variant('nope')


def test_the_rank_weight_flag_reaches_the_methods_train_config():
  """`--train.rank-weight` (the pairwise ranking term) is a train setting of the task."""
  args = experiment.parser().parse_args(['--zoo-variant', 'final-step',
                                         '--train.rank-weight', '1'])
  config = flags.config(args, preset=lambda: zoo_variant(args.zoo_variant))
  assert config.train.rank_weight == 1.0 and config.zoo == zoo_variant('final-step').zoo
  assert run_lib.train_config_for('gmn', config, 400).rank_weight == 1.0
  assert GeneralizationConfig().train.rank_weight == 0.0  # not a default


def test_min_steps_raises_epochs_of_small_training_sets_only():
  config = dataclasses.replace(GeneralizationConfig(), min_steps=1000)
  small = run_lib.train_config_for('gmn', config, 400)
  assert small.epochs == math.ceil(1000 / math.ceil(400 / config.train.batch_size))
  large = run_lib.train_config_for('gmn', config, 3200)
  assert large == run_lib.train_config_for('gmn', GeneralizationConfig(), 3200)
  assert large.epochs == config.train.epochs


@pytest.mark.slow  # trains two tiny zoos (~30 s)
@pytest.mark.parametrize('name', ['valid', 'final-step'])
def test_tiny_variant_generates_and_reads(name, tmp_path):
  config = tiny_variant(name)
  zoo = data_lib.task_zoo(config, tmp_path)
  width = config.zoo.widths[0]
  assert zoo.config == config.zoo and tuple(zoo.widths) == (width,)
  metrics = zoo.metrics[width]
  assert len(metrics['member']) == config.zoo.num_members * len(config.zoo.snapshot_epochs)
  assert np.all((metrics['test_accuracy'] >= 0) & (metrics['test_accuracy'] <= 1))
  graphs, table, _, _ = data_lib.encode_zoo(zoo, probes=2)
  assert len(graphs) == len(metrics['member'])
  parts = data_lib.split_by_model(config, table)
  assert sum(map(len, parts)) == len(graphs)
  assert not set(table['member'][parts[0]]) & set(table['member'][parts[2]])


def test_rank_targets_keep_the_order_and_map_back():
  rng = np.random.default_rng(0)
  train = np.round(rng.beta(8, 1, 300) * 599) / 599  # tied, skewed, like a final-step zoo
  ranks = data_lib.RankTargets.fit(train)
  shares = ranks(train)
  assert 0 < shares.min() < shares.max() < 1
  assert abs(shares.mean() - 0.5) < 1e-6  # mid-ranks: a uniform spread over (0, 1)
  inside = np.sort(rng.uniform(train.min(), train.max(), 200))
  assert np.all(np.diff(ranks(inside)) > 0)  # strictly increasing: no new ties, same τ
  np.testing.assert_allclose(ranks.inverse(ranks(inside)), inside, atol=1e-6)
  assert np.all(np.diff(ranks.inverse(np.linspace(shares.min(), shares.max(), 50))) > 0)


def test_trained_targets_leave_the_scored_targets_alone():
  class Graphs:  # what `trained_targets` reads of a GraphSet
    targets = np.array([0.1, 0.9, 0.95, 0.92, 0.5], np.float32)
  data = data_lib.Data(Graphs(), {}, [], np.array([0, 1, 2]), np.array([3]), np.array([4]), 0)
  same, back = data_lib.trained_targets(GeneralizationConfig(), data)
  assert same is data and back(np.array([0.3])) == 0.3
  ranked, back = data_lib.trained_targets(GeneralizationConfig(targets='rank'), data)
  np.testing.assert_allclose(ranked.graphs.targets[:3], [1 / 6, 3 / 6, 5 / 6], rtol=1e-6)
  np.testing.assert_array_equal(data.graphs.targets, Graphs.targets)  # untouched
  np.testing.assert_allclose(back(ranked.graphs.targets[:3]), [0.1, 0.9, 0.95], rtol=1e-6)
  with pytest.raises(ValueError, match='targets must be'):
    GeneralizationConfig(targets='logit')


def test_sweep_changes_one_setting_over_the_variant_or_the_main_job():
  from benchmarks import zoo_variant_sweep as sweep  # pylint: disable=g-import-not-at-top
  assert sweep.base_config(None) == GeneralizationConfig.default()
  assert sweep.base_config('tanh') == zoo_variant('tanh')
  base = sweep.base_config(None)
  assert sweep.setting(base, 'default') == base
  changed = sweep.setting(base, 'train.learning_rate=0.002,probes=32,targets=rank')
  assert (changed.train.learning_rate, changed.probes, changed.targets) == (0.002, 32, 'rank')
  assert changed == dataclasses.replace(
      base, probes=32, targets='rank',
      train=dataclasses.replace(base.train, learning_rate=0.002))

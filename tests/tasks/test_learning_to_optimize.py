"""End to end: `python -m experiments.learning_to_optimize --tiny` meta-trains a GMN learned
optimizer on a tiny CNN, and on a held-out task (an MLP, a family never seen in
meta-training, from new seeds) it lowers the test loss; the meta-step compiled
once per architecture; a rerun resumes from the checkpoints and a different run is refused."""

import dataclasses
import json

import numpy as np
import pytest

from experiments import learning_to_optimize as experiment
from gmn_jax.tasks.learning_to_optimize import LearningToOptimizeConfig, make_rule
from gmn_jax.tasks.learning_to_optimize.meta_training import meta_train
from gmn_jax.tasks.learning_to_optimize.optimizees import Optimizee


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp('learning_to_optimize')
  experiment.main(['--tiny', '--workdir', str(path)])
  return path


@pytest.mark.slow  # the end-to-end run
def test_gmn_optimizer_lowers_held_out_loss(workdir):
  results = json.loads((workdir / 'results.json').read_text())
  assert len(results['tasks']) == 1
  for name, task in results['tasks'].items():
    gmn = task['methods']['gmn']
    assert np.mean(gmn['test_loss']) < 0.95 * np.mean(gmn['initial_test_loss']), name
    assert set(task['methods']) == {'gmn', 'adam', 'sgdm'}
  for method, meta in results['meta_training'].items():
    assert set(meta['compilations'].values()) == {1}, method
  curves = np.load(workdir / 'curves.npz')
  config = LearningToOptimizeConfig.tiny()
  name = config.test_tasks[0][0]
  assert curves[f'{name}/gmn/train_loss'].shape == (config.seeds, config.eval_steps)
  for file in ('results.md', 'curves.png', 'meta_loss.png'):
    assert (workdir / file).stat().st_size > 0


@pytest.mark.slow  # the end-to-end run
def test_rerun_resumes_and_other_runs_are_refused(workdir):
  config = LearningToOptimizeConfig.tiny()
  family = [Optimizee(spec, 128) for spec in config.train_tasks]
  result = meta_train(make_rule('gmn', config), family, config.meta, workdir / 'runs', 'gmn',
                      progress=False, stabilisers=config.stabilisers)
  assert len(result.history) == config.meta.meta_steps
  assert set(result.compilations.values()) == {0}  # nothing left to run
  other = dataclasses.replace(config.meta, unroll=config.meta.unroll + 1)
  with pytest.raises(ValueError, match='different run'):
    meta_train(make_rule('gmn', config), family, other, workdir / 'runs', 'gmn',
               stabilisers=config.stabilisers)


@pytest.mark.slow  # evaluates the tiny run again
def test_tuned_rates_from_an_earlier_run_are_reused_not_tuned_again(workdir, monkeypatch):
  from gmn_jax.tasks.learning_to_optimize import run as run_lib  # pylint: disable=g-import-not-at-top
  earlier = json.loads((workdir / 'results.json').read_text())
  def refuse(*args, **kwargs):
    raise AssertionError('tuned again')
  monkeypatch.setattr(run_lib, 'tune_learning_rates', refuse)
  config = LearningToOptimizeConfig.tiny()
  results = run_lib.train_and_evaluate(config, workdir, progress=False,
                                       tuned=earlier['tuned'])
  for name in ('adam', 'sgdm'):
    assert results['tuned'][name]['reused']
    assert results['tuned'][name]['learning_rate'] == earlier['tuned'][name]['learning_rate']
  task = next(iter(results['tasks']))
  assert results['tasks'][task]['methods']['adam']['test_loss'] == (
      earlier['tasks'][task]['methods']['adam']['test_loss'])

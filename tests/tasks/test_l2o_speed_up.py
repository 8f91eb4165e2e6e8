"""The speed-up over tuned Adam (GradMetaNet's metric) and the learning-rate grids that extend
past an edge: on synthetic curves and a synthetic loss landscape, in milliseconds."""

import dataclasses

import numpy as np
import pytest

from gmn_jax.tasks.learning_to_optimize import LearningToOptimizeConfig, run
from gmn_jax.tasks.learning_to_optimize.speed_up import speed_up, trailing_mean


def test_trailing_mean_matches_a_loop():
  losses = np.random.default_rng(0).normal(size=(3, 17))
  for window in (1, 4, 30):
    expected = [[losses[s, max(0, t - window + 1):t + 1].mean() for t in range(17)]
                for s in range(3)]
    np.testing.assert_allclose(trailing_mean(losses, window), expected, rtol=1e-12)
  with pytest.raises(ValueError, match='window'):
    trailing_mean(losses, 0)


def test_speed_up_of_a_curve_twice_as_fast():
  t = np.arange(1, 101)
  adam = np.stack([1 / t, 2 / t])                            # best at the last step
  fast = np.stack([1 / np.minimum(2 * t, 100), 2 / np.minimum(2 * t, 100)])
  result = speed_up(adam, fast, window=1)
  assert result['reference_steps'] == [100, 100]
  assert result['steps'] == [50, 50]
  assert result['speed_up'] == [2.0, 2.0] and result['reached'] == 2
  assert speed_up(adam, adam, window=5)['speed_up'] == [1.0, 1.0]


def test_an_optimizer_that_never_gets_there_or_diverges_has_no_speed_up():
  t = np.arange(1, 101)
  adam = np.stack([1 / t, 1 / t])
  slow = np.stack([1 / np.sqrt(t), 1 / t])                   # seed 0 never reaches 1/100
  diverged = np.stack([1 / t, 1 / t])
  diverged[:, 10:] = np.nan
  assert speed_up(adam, slow, window=1)['speed_up'] == [None, 1.0]
  assert speed_up(adam, slow, window=1)['reached'] == 1
  result = speed_up(adam, diverged, window=3)
  assert result['speed_up'] == [None, None] and result['reached'] == 0


class _Task:
  spec = dataclasses.make_dataclass('Spec', [('label', str)])('synthetic')


def _landscape(best_lr):
  """A runner whose training loss is (log10 lr - log10 best_lr)²: a bowl around best_lr."""
  def runner(lr, seeds):
    loss = (np.log10(float(lr)) - np.log10(best_lr)) ** 2
    return np.full((len(seeds), 40), loss), None, None
  return runner


@pytest.mark.parametrize('extensions,expected,inside', [(3, 0.1, True), (1, 0.1, False),
                                                        (0, 1e-2, False)])
def test_a_grid_extends_past_its_edge_until_the_best_rate_is_inside(monkeypatch, extensions,
                                                                    expected, inside):
  monkeypatch.setattr(run, '_hand_designed_runner',
                      lambda config, task, name, cache: _landscape(0.1))
  config = dataclasses.replace(LearningToOptimizeConfig.tiny(), adam_lrs=(1e-3, 1e-2),
                               sgd_lrs=(0.03, 0.1, 0.3), max_grid_extensions=extensions)
  tuned = run.tune_learning_rates(config, [_Task()], progress=False)
  assert tuned['adam']['learning_rate'] == pytest.approx(expected)
  assert tuned['adam']['inside'] is inside
  assert len(tuned['adam']['grid']) == 2 + min(extensions, 2)  # it stops once inside
  assert tuned['sgdm']['learning_rate'] == pytest.approx(0.1)  # inside from the start
  assert tuned['sgdm']['inside'] and len(tuned['sgdm']['grid']) == 3

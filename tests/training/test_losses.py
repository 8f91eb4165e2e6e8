"""The pairwise ranking loss, and `fit`'s train step with `TrainConfig.rank_weight`."""

import collections
import itertools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gmn_jax.training.fit import TrainConfig, make_train_step
from gmn_jax.training.fit import _run_identity  # pylint: disable=protected-access
from gmn_jax.training import losses

# One compiled program per input shape (eager ops would compile each primitive).
pairwise_logistic = jax.jit(losses.pairwise_logistic)
Graphs = collections.namedtuple('Graphs', ['globals'])


def _brute_force(scores, targets, mask) -> float:
  terms = [math.log1p(math.exp(scores[j] - scores[i]))
           for i, j in itertools.permutations(range(len(scores)), 2)
           if mask[i] and mask[j] and targets[i] > targets[j]]
  return sum(terms) / len(terms) if terms else 0.0


def test_pairwise_logistic_is_the_mean_over_ordered_pairs_of_real_samples():
  """Every pair with a higher target counts once; ties and padded samples add nothing."""
  rng = np.random.default_rng(0)
  scores = rng.normal(size=9).astype(np.float32)
  targets = np.array([0.9, 0.9, 0.5, 0.7, 0.1, 0.95, 0.3, 0.3, 0.6], np.float32)  # two ties
  mask = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0], bool)
  got = float(pairwise_logistic(jnp.asarray(scores), jnp.asarray(targets), jnp.asarray(mask)))
  assert got == pytest.approx(_brute_force(scores, targets, mask), rel=1e-5)
  # A stacked [n_data, n] batch pairs across its sub-batches, as one flat batch would.
  stacked = pairwise_logistic(*(jnp.asarray(a[:8]).reshape(2, 4) for a in (scores, targets,
                                                                           mask)))
  assert float(stacked) == pytest.approx(_brute_force(scores[:8], targets[:8], mask[:8]),
                                         rel=1e-5)


def test_pairwise_logistic_rewards_the_right_order_and_ignores_the_scale_of_targets():
  targets = jnp.array([0.91, 0.90, 0.89, 0.2])
  mask = jnp.ones(4, bool)
  right, wrong = jnp.array([6.0, 3.0, 0.0, -3.0]), jnp.array([-3.0, 0.0, 3.0, 6.0])
  # (one shape throughout: one compilation)
  assert float(pairwise_logistic(right, targets, mask)) < 0.05
  assert float(pairwise_logistic(wrong, targets, mask)) > 3.0
  # Only the order of the targets matters: a dense top counts as much as a spread one.
  spread = jnp.array([0.9, 0.6, 0.4, 0.2])
  assert float(pairwise_logistic(right, spread, mask)) == pytest.approx(
      float(pairwise_logistic(right, targets, mask)))
  assert float(pairwise_logistic(right, jnp.full(4, 0.5), mask)) == 0.0  # all tied


class _Linear(nn.Module):
  @nn.compact
  def __call__(self, graphs):
    return graphs._replace(globals=nn.Dense(1)(graphs.globals))


def test_the_train_step_adds_the_weighted_pairwise_term_to_the_squared_error():
  rng = np.random.default_rng(1)
  graphs = Graphs(jnp.asarray(rng.normal(size=(6, 3)), jnp.float32))
  targets = jnp.asarray([0.9, 0.88, 0.91, 0.3, 0.0, 0.0], jnp.float32)
  mask = jnp.asarray([1, 1, 1, 1, 0, 0], bool)
  model = _Linear()
  params = {'params': {'Dense_0': {  # by hand: Flax's eager init costs seconds
      'kernel': jnp.asarray(rng.normal(size=(3, 1)), jnp.float32), 'bias': jnp.zeros(1)}}}
  tx = optax.sgd(0.0)
  logits = np.asarray(model.apply(params, graphs).globals[:, 0])
  mse = float(np.sum(((1 / (1 + np.exp(-logits))) - targets)[:4] ** 2) / 4)
  pair = _brute_force(logits, np.asarray(targets), np.asarray(mask))
  step = make_train_step(model, tx, 'mse', rank_weight=0.5)
  _, _, loss = step(params, tx.init(params), graphs, targets, mask)
  assert float(loss) == pytest.approx(mse + 0.5 * pair, rel=1e-5)


def test_rank_weight_is_part_of_a_run_only_when_used():
  """Runs saved before the field existed (squared error alone) still resume; a run with a
  pairwise term is another run."""
  model, rows = _Linear(), np.arange(4)
  identity = _run_identity
  assert 'rank_weight' not in identity(model, TrainConfig(), rows, rows)['train_config']
  ranked = identity(model, TrainConfig(rank_weight=0.1), rows, rows)
  assert ranked['train_config']['rank_weight'] == 0.1
  with pytest.raises(ValueError, match='rank_weight'):
    TrainConfig(rank_weight=0.1, loss='cross_entropy')
  with pytest.raises(ValueError, match='rank_weight'):
    TrainConfig(rank_weight=-1.0)


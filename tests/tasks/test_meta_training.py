"""Meta-training with persistent ES on a family of two architectures: the meta-step compiles
once per architecture whatever batch sizes and initialisation scales are drawn, the meta-loss
stays finite and the meta-parameters move. Truncated backpropagation with several
truncations per inner run carries the optimizee and the step count from one meta-step to the
next and restarts after the last truncation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gmn_jax.tasks.learning_to_optimize.meta_training import (MetaTrainConfig, _tbptt_step,
                                                              meta_train)
from gmn_jax.tasks.learning_to_optimize.optimizees import Optimizee, OptimizeeSpec
from gmn_jax.training.learned_optimizer import LearnedOptimizer
from gmn_jax.training.update_rules import PerParameterMLP


@pytest.mark.slow  # 14-24 s: keeps the fast tier within its 10 minutes
def test_tbptt_truncations_carry_the_optimizee_then_restart():
  task = Optimizee(OptimizeeSpec('mlp', 4, 1), 16)
  lopt = LearnedOptimizer(PerParameterMLP((4,)), task.pg)
  meta_params = lopt.init_meta_params(jax.random.key(0))
  init_run, run = _tbptt_step(lopt, task, unroll=2, truncations=3)
  run = jax.jit(run)
  carry = init_run(meta_params, jax.random.key(1), 1.0)
  carries = []
  for i in range(4):
    loss, grad, carry = run(meta_params, carry, jax.random.key(10 + i), 16, 1.0)
    assert np.isfinite(float(loss)) and all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grad))
    carries.append(carry)
  assert [int(c[1].step) for c in carries] == [2, 4, 6, 2]  # the 4th meta-step restarts
  # the 2nd meta-step continues from the 1st's optimizee: moving it moves the result
  leaf = lambda c: jax.tree.leaves(c[0])[0]
  _, _, same = run(meta_params, carries[0], jax.random.key(11), 16, 1.0)
  moved = (jax.tree.map(lambda p: p + 0.1, carries[0][0]), carries[0][1])
  _, _, other = run(meta_params, moved, jax.random.key(11), 16, 1.0)
  assert jnp.allclose(leaf(same), leaf(carries[1]))
  assert not jnp.allclose(leaf(other), leaf(carries[1]))


@pytest.mark.slow  # meta-trains for real to count compilations (~80 s)
def test_pes_compiles_once_per_architecture(tmp_path):
  family = [Optimizee(OptimizeeSpec('cnn', 2, 1), 16), Optimizee(OptimizeeSpec('mlp', 4, 1), 16)]
  rule = PerParameterMLP((4,))
  config = MetaTrainConfig(meta_steps=8, unroll=3, estimator='pes', particles=2, horizon=6,
                           batch_sizes=(8, 16), checkpoint_every=8)
  result = meta_train(rule, family, config, tmp_path, 'pes', progress=False)
  drawn = {h['task'] for h in result.history}
  assert len(drawn) == 2 and len({h['batch_size'] for h in result.history}) == 2
  assert result.compilations == {t.spec.label: 1 for t in family}
  assert np.all(np.isfinite([h['meta_loss'] for h in result.history]))
  start = LearnedOptimizer(rule, family[0].pg).init_meta_params(jax.random.key(config.seed))
  moved = [float(np.abs(a - b).max()) for a, b in
           zip(jax.tree.leaves(result.meta_params), jax.tree.leaves(start))]
  assert max(moved) > 0


@pytest.mark.slow  # ~55 s at load 5 (eager steps and two compilations)
def test_lookahead_next_scores_the_step_on_an_independent_batch():
  task = Optimizee(OptimizeeSpec('mlp', 4, 1), 16)
  lopt = LearnedOptimizer(PerParameterMLP((4,)), task.pg)
  meta_params = lopt.init_meta_params(jax.random.key(0))
  k_init, k_data = jax.random.split(jax.random.key(3))  # as the run splits its key
  params = task.init(k_init, 1.0)  # a run at step 0 starts from this fresh optimizee
  carry = (params, lopt.init_state(params))
  key = jax.random.split(k_data, 1)[0]  # the unroll's one inner-step key
  batch = task.batch(key, 16)
  updates, _ = lopt.step(meta_params, params, jax.grad(task.loss)(params, batch),
                         carry[1])
  moved = jax.tree.map(jnp.add, params, updates)
  expected = {'same': task.loss(moved, batch),
              'next': task.loss(moved, task.batch(jax.random.fold_in(key, 1), 16))}
  for lookahead, value in expected.items():
    _, run = _tbptt_step(lopt, task, unroll=1, truncations=1, lookahead=lookahead)
    loss, _, _ = run(meta_params, carry, jax.random.key(3), 16, 1.0)
    np.testing.assert_allclose(loss, value, rtol=1e-5, err_msg=lookahead)
  assert not np.isclose(expected['same'], expected['next'])

"""Meta-training with persistent ES on a family of two architectures: the meta-step compiles
once per architecture whatever batch sizes and initialisation scales are drawn, the meta-loss
stays finite and the meta-parameters move."""

import jax
import numpy as np
import pytest

from gmn_jax.tasks.learning_to_optimize.meta_training import MetaTrainConfig, meta_train
from gmn_jax.tasks.learning_to_optimize.optimizees import Optimizee, OptimizeeSpec
from gmn_jax.training.learned_optimizer import LearnedOptimizer
from gmn_jax.training.update_rules import PerParameterMLP

pytestmark = pytest.mark.slow  # meta-trains for real to count compilations (~80 s)


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

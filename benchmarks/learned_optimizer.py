"""Cost of learned optimizers: meta-steps per second, and one update against Adam's.

For each learned optimizer (GMN and NG-GNN graph rules, per-parameter MLP and LSTM) on one
optimizee architecture (the default meta-training CNN, width 8, depth 2, on 8x8 digits):

- meta-training: meta-steps per second of the truncated-backpropagation meta-step (an unroll
  of `--unroll` inner steps, each with a look-ahead meta-gradient), compile time apart;
- the inner training step through optax (forward, backward, update) with the learned
  optimizer, as a ratio to the same step with Adam, measured in the same process.

    python benchmarks/learned_optimizer.py            # every method, ~minutes on 2 cores
    python benchmarks/learned_optimizer.py --quick    # GMN and MLP, short unroll

Timings on a shared machine move with its load: compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import time

import jax
import optax

from gmn_jax.tasks.learning_to_optimize import LEARNED, LearningToOptimizeConfig, make_rule
from gmn_jax.tasks.learning_to_optimize.meta_training import _tbptt_step
from gmn_jax.tasks.learning_to_optimize.optimizees import Optimizee, OptimizeeSpec
from gmn_jax.training.learned_optimizer import LearnedOptimizer


def _timed(fn, *args, repeats: int):
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return compile_s, (time.perf_counter() - start) / repeats


def _train_step(task: Optimizee, tx: optax.GradientTransformation):
  @jax.jit
  def step(params, state, key):
    batch = task.batch(key, 64)
    grads = jax.grad(task.loss)(params, batch)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state
  return step


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--unroll', type=int, default=50)
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  methods = ('gmn', 'mlp') if args.quick else LEARNED
  unroll = 10 if args.quick else args.unroll
  config = LearningToOptimizeConfig()
  task = Optimizee(OptimizeeSpec('cnn', 8, 2), max_batch=128)
  params = task.init(jax.random.key(0))
  key = jax.random.key(1)
  adam = optax.adam(1e-3)
  _, adam_s = _timed(_train_step(task, adam), params, adam.init(params), key,
                     repeats=20 * args.repeats)
  print(f'optimizee: {task.spec.label}, {task.n_params} parameters; Adam step {adam_s * 1e3:.2f} ms')
  print(f'{"method":8s} {"compile s":>10s} {"meta-steps/s":>13s} {"inner steps/s":>14s} '
        f'{"step ms":>8s} {"x Adam":>7s}')
  for method in methods:
    lopt = LearnedOptimizer(make_rule(method, config), task.pg)
    meta_params = lopt.init_meta_params(jax.random.key(0))
    init_run, run = _tbptt_step(lopt, task, unroll, 1)
    meta_step = jax.jit(run)
    compile_s, meta_s = _timed(meta_step, meta_params, init_run(meta_params, key, 1.0), key, 64,
                               1.0, repeats=args.repeats)
    tx = lopt.as_optax(meta_params)
    _, step_s = _timed(_train_step(task, tx), params, tx.init(params), key,
                       repeats=20 * args.repeats)
    print(f'{method:8s} {compile_s:10.1f} {1 / meta_s:13.3f} {unroll / meta_s:14.1f} '
          f'{step_s * 1e3:8.2f} {step_s / adam_s:7.1f}')


if __name__ == '__main__':
  main()

"""The learning-to-optimize task's driver: meta-train every learned optimizer, tune Adam and
SGD with momentum, evaluate all on the held-out tasks, report. Host-side."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gmn_jax import progress as progress_lib
from gmn_jax.tasks.learning_to_optimize import report as report_lib
from gmn_jax.tasks.learning_to_optimize.config import LearningToOptimizeConfig
from gmn_jax.tasks.learning_to_optimize.meta_training import meta_train
from gmn_jax.tasks.learning_to_optimize.methods import HAND_DESIGNED, make_rule
from gmn_jax.tasks.learning_to_optimize.optimizees import Optimizee
from gmn_jax.tasks.learning_to_optimize.speed_up import speed_up
from gmn_jax.training.learned_optimizer import LearnedOptimizer

TEST_SEED_OFFSET = 10_000  # evaluation seeds; tuning uses 5_000 + i, meta-training others


def evaluation_runner(task: Optimizee, make_tx: Callable[[Any], optax.GradientTransformation],
                      steps: int, every: int, batch_size: int):
  """A jitted `(tx_args, seeds [S]) -> (train_loss [S, steps], test_loss [S, 1 + steps/every],
  test_accuracy [S, 1 + steps/every])`: `steps` steps of `make_tx(tx_args)` from a fresh
  initialisation per seed (vmapped), tested before the first step and every `every` steps.
  One compilation per runner, whatever `tx_args` (a learning rate, meta-parameters)."""

  @jax.jit
  def run(tx_args, seeds):
    def one(seed):
      k_init, k_data = jax.random.split(jax.random.key(seed))
      params = task.init(k_init)
      tx = make_tx(tx_args)

      def step(carry, key):
        params, state = carry
        batch = task.batch(key, batch_size)
        loss, grads = jax.value_and_grad(task.loss)(params, batch)
        updates, state = tx.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

      def chunk(carry, keys):
        carry, losses = jax.lax.scan(step, carry, keys)
        return carry, (losses, *task.test_metrics(carry[0]))

      keys = jax.random.split(k_data, steps).reshape(steps // every, every)
      _, (train, test_loss, test_acc) = jax.lax.scan(chunk, (params, tx.init(params)), keys)
      loss0, acc0 = task.test_metrics(params)
      return (train.reshape(-1), jnp.concatenate([loss0[None], test_loss]),
              jnp.concatenate([acc0[None], test_acc]))
    return jax.vmap(one)(seeds)

  return run


def _hand_designed(name: str) -> Callable[[Any], optax.GradientTransformation]:
  if name == 'adam':
    return optax.adam
  return lambda lr: optax.sgd(lr, momentum=0.9)


def _hand_designed_runner(config: LearningToOptimizeConfig, task: Optimizee, name: str,
                          cache: dict[tuple[str, str], Any]):
  """The evaluation runner of Adam or SGD-momentum on `task`, one per architecture: tuning
  and evaluation share its compilation (when `tune_seeds == seeds`)."""
  key = (task.spec.label, name)
  if key not in cache:
    cache[key] = evaluation_runner(task, _hand_designed(name), config.eval_steps,
                                   config.eval_every, config.eval_batch_size)
  return cache[key]


def tune_learning_rates(config: LearningToOptimizeConfig, family: list[Optimizee],
                        progress: bool = True, runners: dict[tuple[str, str], Any] | None = None
                        ) -> dict[str, dict[str, Any]]:
  """Adam's and SGD-momentum's learning rates from their grids: the lowest mean training
  loss over the last 10% of `eval_steps` on the meta-training tasks (tuning seeds only).

  A grid whose best rate is at its edge is extended past that edge (by the grid's own ratio)
  up to `config.max_grid_extensions` times, so that the chosen rate has a worse neighbour on
  both sides; `inside` records whether it has. `runners` caches the compiled runners for the
  evaluation that follows.
  """
  runners = {} if runners is None else runners
  seeds = np.arange(config.tune_seeds) + 5_000
  tail = max(1, config.eval_steps // 10)

  def score(name: str, lr: float) -> float:
    total = 0.0
    for task in family:
      train, _, _ = _hand_designed_runner(config, task, name, runners)(jnp.float32(lr), seeds)
      value = float(np.mean(np.asarray(train)[:, -tail:]))
      total += value if np.isfinite(value) else np.inf
    return total / len(family)

  out = {}
  for name, grid in (('adam', config.adam_lrs), ('sgdm', config.sgd_lrs)):
    scores = {float(lr): score(name, lr) for lr in grid}
    for _ in range(config.max_grid_extensions):
      lrs = sorted(scores)
      best = min(lrs, key=scores.get)
      if len(lrs) < 2 or lrs[0] < best < lrs[-1] or not np.isfinite(scores[best]):
        break
      lr = best * lrs[-1] / lrs[-2] if best == lrs[-1] else best * lrs[0] / lrs[1]
      scores[lr] = score(name, lr)
    lrs = sorted(scores)
    best = min(lrs, key=scores.get)
    out[name] = {'learning_rate': best, 'grid': {f'{lr:g}': scores[lr] for lr in lrs},
                 'inside': bool(lrs[0] < best < lrs[-1])}
    progress_lib.line(f'tuned {name}: learning rate {best:g}'
                      + ('' if out[name]['inside'] else ' (at the edge of its grid)'),
                      enabled=progress)
  return out


def train_and_evaluate(config: LearningToOptimizeConfig, workdir: str | pathlib.Path,
                       progress: bool = True, tuned: dict[str, dict[str, Any]] | None = None
                       ) -> dict[str, Any]:
  """Runs the experiment (see the module docstring) and returns `results.json`'s content.

  A killed run started again resumes meta-training from the last checkpoints.

  Args:
    config: the settings.
    workdir: where the run and its report are written.
    progress: progress bars and lines.
    tuned: Adam's and SGD-momentum's tuned rates from an earlier run (its `results.json`'s
      `'tuned'`, as `tune_learning_rates` returns them), used as they are (recorded with
      `'reused': True`); None tunes them on `config.train_tasks`.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  started = time.time()
  max_batch = max(max(config.meta.batch_sizes), config.eval_batch_size)
  family = [Optimizee(spec, max_batch) for spec in config.train_tasks]
  learned, meta = {}, {}
  for method in config.methods:
    t0 = time.time()
    try:
      result = meta_train(make_rule(method, config), family, config.meta, workdir / 'runs',
                          method, progress, config.stabilisers)
    except FloatingPointError as error:  # reported, and the other methods still run
      meta[method] = {'seconds': time.time() - t0, 'failed': str(error), 'history': []}
      progress_lib.line(f'{method} not evaluated: {error}', enabled=progress)
      continue
    learned[method] = result.meta_params
    meta[method] = {'seconds': time.time() - t0, 'compilations': result.compilations,
                    'history': result.history}
  runners: dict[tuple[str, str], Any] = {}
  if tuned is None:
    tuned = tune_learning_rates(config, family, progress, runners)
  else:
    tuned = {name: {**tuned[name], 'reused': True} for name in HAND_DESIGNED}
  seeds = np.arange(config.seeds) + TEST_SEED_OFFSET
  tasks, curves = {}, {}
  for task_name, spec in config.test_tasks:
    task = Optimizee(spec, max_batch)
    runs: dict[str, Any] = {}
    for method in learned:
      lopt = LearnedOptimizer(make_rule(method, config), task.pg, config.stabilisers)
      run = evaluation_runner(task, lopt.as_optax, config.eval_steps, config.eval_every,
                              config.eval_batch_size)
      runs[method] = run(learned[method], seeds)
    for name in HAND_DESIGNED:
      run = _hand_designed_runner(config, task, name, runners)
      runs[name] = run(jnp.float32(tuned[name]['learning_rate']), seeds)
    tasks[task_name] = {'spec': dataclasses.asdict(spec), 'n_params': task.n_params,
                        'methods': {}}
    for name, (train, test_loss, test_acc) in runs.items():
      train, test_loss, test_acc = (np.asarray(a, np.float64) for a in (train, test_loss,
                                                                        test_acc))
      curves[f'{task_name}/{name}/train_loss'] = train
      curves[f'{task_name}/{name}/test_loss'] = test_loss
      curves[f'{task_name}/{name}/test_accuracy'] = test_acc
      tasks[task_name]['methods'][name] = {
          'test_loss': test_loss[:, -1].tolist(), 'test_accuracy': test_acc[:, -1].tolist(),
          'initial_test_loss': test_loss[:, 0].tolist(),
          **speed_up(np.asarray(runs['adam'][0]), train, config.speed_up_window)}
    progress_lib.line(f'evaluated {task_name}', enabled=progress)
  results = {'config': json.loads(json.dumps(dataclasses.asdict(config), default=str)),
             'seeds': seeds.tolist(), 'tuned': tuned, 'tasks': tasks,
             'meta_training': {m: {k: v for k, v in r.items() if k != 'history'}
                               for m, r in meta.items()},
             'seconds': time.time() - started}
  report_lib.write(workdir, results, curves, {m: r['history'] for m, r in meta.items()},
                   config.eval_every)
  return results

"""Meta-training a learned optimizer on a family of optimizee tasks.

Each meta-step samples a task (an architecture of the family, a batch size, an initialisation
scale; `TaskFamily`), initialises a fresh optimizee and unrolls the learned optimizer on it.

- `'tbptt'` (the neural-graphs paper's protocol): an unroll of `unroll` inner steps; at each
  one the meta-loss is the optimizee's loss one step ahead on the same batch,
  `L(theta_t + delta(phi), batch_t)`, with theta_t detached, and the meta-gradient is the
  mean over the unroll. One meta-step per unroll; the optimizee is re-initialised every unroll.
- `'pes'` (persistent evolution strategies, Vicol et al. 2021, as UNF uses): `particles`
  antithetic pairs with perturbations of standard deviation `sigma` each run a truncation of
  `unroll` steps; the meta-gradient is the mean of the accumulated perturbations times the
  loss difference, `xi (L+ - L-) / (2 sigma^2)`. Each meta-step starts from a fresh optimizee
  (no state persists across meta-steps, so here PES reduces to antithetic ES over a
  truncation; the accumulated-noise term is one truncation's noise).

The meta-optimizer is AdamW with cosine decay over the meta-steps (3e-4, weight decay 1e-4 in
the paper). The meta-step is one jitted program per optimizee architecture (a batch size and
an initialisation scale are traced values), checked with a trace counter. Meta-parameters
and the meta-optimizer state are saved with orbax every `checkpoint_every` meta-steps and
the meta-loss per meta-step in `log.jsonl`; a killed run resumes from the last checkpoint.
Host-side driver.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from gmn_jax import progress as progress_lib
from gmn_jax.tasks.optimizees import Optimizee
from gmn_jax.training.fit import _check_run
from gmn_jax.training.learned_optimizer import LearnedOptimizer

ESTIMATORS = ('tbptt', 'pes')


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
  """Meta-training settings.

  Attributes:
    meta_steps: meta-gradient steps.
    unroll: inner steps per meta-step (the truncation).
    learning_rate: peak meta learning rate (cosine decay to 0 over `meta_steps`).
    weight_decay: AdamW weight decay.
    clip_norm: meta-gradient clipping.
    estimator: `'tbptt'` or `'pes'`.
    particles: PES antithetic pairs.
    sigma: PES perturbation standard deviation.
    batch_sizes: inner batch sizes sampled per meta-step.
    init_scales: range of the sampled (log-uniform) initialisation scale.
    checkpoint_every: meta-steps between checkpoints.
    seed: seeds the rule's initialisation and the task sampling.
  """

  meta_steps: int = 150
  unroll: int = 50
  learning_rate: float = 1e-3
  weight_decay: float = 1e-4
  clip_norm: float = 1.0
  estimator: str = 'tbptt'
  particles: int = 16
  sigma: float = 0.01
  batch_sizes: tuple[int, ...] = (32, 64, 128)
  init_scales: tuple[float, float] = (0.5, 2.0)
  checkpoint_every: int = 25
  seed: int = 0


def _tbptt_step(lopt: LearnedOptimizer, task: Optimizee, unroll: int):
  """`(meta_params, key, batch_size, init_scale) -> (mean look-ahead loss, meta-gradient)`."""

  def run(meta_params, key, batch_size, init_scale):
    k_init, k_data = jax.random.split(key)
    params = task.init(k_init, init_scale)

    def inner(carry, key):
      params, state, grad_sum = carry
      batch = task.batch(key, batch_size)
      grads = jax.grad(task.loss)(params, batch)

      def lookahead(phi):
        updates, new_state = lopt.step(phi, params, grads, state)
        return task.loss(optax.apply_updates(params, updates), batch), (updates, new_state)

      (loss, (updates, state)), g = jax.value_and_grad(lookahead, has_aux=True)(meta_params)
      params = jax.lax.stop_gradient(optax.apply_updates(params, updates))
      state = jax.lax.stop_gradient(state)
      return (params, state, jax.tree.map(jnp.add, grad_sum, g)), loss

    zero = jax.tree.map(jnp.zeros_like, meta_params)
    (_, _, grad_sum), losses = jax.lax.scan(inner, (params, lopt.init_state(params), zero),
                                            jax.random.split(k_data, unroll))
    return jnp.mean(losses), jax.tree.map(lambda g: g / unroll, grad_sum)

  return run


def _pes_step(lopt: LearnedOptimizer, task: Optimizee, unroll: int, particles: int,
              sigma: float):
  """Antithetic ES over one truncation (see the module docstring)."""

  def truncation_loss(meta_params, key, batch_size, init_scale):
    k_init, k_data = jax.random.split(key)
    params = task.init(k_init, init_scale)

    def inner(carry, key):
      params, state = carry
      batch = task.batch(key, batch_size)
      loss, grads = jax.value_and_grad(task.loss)(params, batch)
      updates, state = lopt.step(meta_params, params, grads, state)
      return (optax.apply_updates(params, updates), state), loss

    _, losses = jax.lax.scan(inner, (params, lopt.init_state(params)),
                             jax.random.split(k_data, unroll))
    return jnp.mean(jnp.where(jnp.isfinite(losses), losses, 1e3))

  def run(meta_params, key, batch_size, init_scale):
    k_noise, k_task = jax.random.split(key)
    leaves, treedef = jax.tree.flatten(meta_params)
    keys = jax.random.split(k_noise, len(leaves))
    noise = jax.tree.unflatten(treedef, [
        sigma * jax.random.normal(k, (particles,) + l.shape, l.dtype)
        for k, l in zip(keys, leaves)])
    task_keys = jax.random.split(k_task, particles)  # each pair shares a task

    def pair(eps, k):
      plus = truncation_loss(jax.tree.map(jnp.add, meta_params, eps), k, batch_size, init_scale)
      minus = truncation_loss(jax.tree.map(jnp.subtract, meta_params, eps), k, batch_size,
                              init_scale)
      return plus, minus

    plus, minus = jax.lax.map(lambda a: pair(*a), (noise, task_keys))
    weight = (plus - minus) / (2 * sigma ** 2 * particles)
    grad = jax.tree.map(lambda n: jnp.tensordot(weight, n, 1), noise)
    return jnp.mean((plus + minus) / 2), grad

  return run


@dataclasses.dataclass
class MetaTrainResult:
  """Meta-trained parameters and the log: one `{'step', 'meta_loss', 'task'}` per step."""

  meta_params: Any
  history: list[dict[str, Any]]
  compilations: dict[str, int]


def meta_train(rule: nn.Module, family: Sequence[Optimizee], config: MetaTrainConfig,
               workdir: str | pathlib.Path, name: str, progress: bool = True) -> MetaTrainResult:
  """Meta-trains `rule` on tasks drawn from `family`. Host-side driver.

  Args:
    rule: an update rule of `gmn_jax.training.update_rules`.
    family: the optimizee architectures (each with its data) tasks are drawn from.
    config: the settings.
    workdir: `workdir/name` holds `run.json`, `log.jsonl` and orbax `checkpoints/`.
    name: the run's name.
    progress: a progress bar (one line per checkpoint off a terminal).

  Returns:
    The meta-parameters after the last step, the log and the number of compilations of the
    meta-step per architecture (1 each, whatever the batch sizes and scales drawn).

  Raises:
    ValueError: an unknown estimator, or a run directory holding a different run.
    FloatingPointError: a non-finite meta-loss (the checkpoints before it are kept).
  """
  if config.estimator not in ESTIMATORS:
    raise ValueError(f'unknown estimator {config.estimator!r}; choose from {ESTIMATORS}')
  run_dir = pathlib.Path(workdir) / name
  run_dir.mkdir(parents=True, exist_ok=True)
  identity = json.loads(json.dumps({
      'rule': repr(rule), 'config': dataclasses.asdict(config),
      'family': [dataclasses.asdict(t.spec) for t in family]}, default=str))
  _check_run(run_dir, identity)
  lopts = [LearnedOptimizer(rule, task.pg) for task in family]
  tx = optax.chain(optax.clip_by_global_norm(config.clip_norm), optax.adamw(
      optax.cosine_decay_schedule(config.learning_rate, max(config.meta_steps, 1)),
      weight_decay=config.weight_decay))
  meta_params = lopts[0].init_meta_params(jax.random.key(config.seed))
  state = {'meta_params': meta_params, 'opt_state': tx.init(meta_params), 'step': np.asarray(0)}
  manager = ocp.CheckpointManager((run_dir / 'checkpoints').absolute(),
                                  options=ocp.CheckpointManagerOptions(max_to_keep=2,
                                                                       create=True))
  log_path = run_dir / 'log.jsonl'
  history: list[dict[str, Any]] = []
  if manager.latest_step() is not None:
    state = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore(state))
    history = [json.loads(l) for l in log_path.read_text().splitlines()][:int(state['step'])]
  traces = {t.spec.label: 0 for t in family}

  def compiled(lopt, task):
    if config.estimator == 'tbptt':
      estimate = _tbptt_step(lopt, task, config.unroll)
    else:
      estimate = _pes_step(lopt, task, config.unroll, config.particles, config.sigma)

    @jax.jit
    def meta_step(meta_params, opt_state, key, batch_size, init_scale):
      traces[task.spec.label] += 1
      loss, grads = estimate(meta_params, key, batch_size, init_scale)
      updates, opt_state = tx.update(grads, opt_state, meta_params)
      return optax.apply_updates(meta_params, updates), opt_state, loss
    return meta_step

  steps = [compiled(l, t) for l, t in zip(lopts, family)]
  meta_params, opt_state = state['meta_params'], state['opt_state']
  lo, hi = np.log(config.init_scales[0]), np.log(config.init_scales[1])
  for step in progress_lib.bar(range(int(state['step']), config.meta_steps), enabled=progress,
                               initial=int(state['step']), total=config.meta_steps,
                               desc=f'meta-training {name}'):
    rng = np.random.default_rng([config.seed, step])
    which = int(rng.integers(len(family)))
    batch_size = int(rng.choice(config.batch_sizes))
    init_scale = float(np.exp(rng.uniform(lo, hi)))
    key = jax.random.fold_in(jax.random.key(config.seed + 1), step)
    meta_params, opt_state, loss = steps[which](meta_params, opt_state, key, batch_size,
                                                init_scale)
    loss = float(loss)
    if not np.isfinite(loss):
      raise FloatingPointError(
          f'{name}: the meta-loss is not finite at meta-step {step + 1} (task '
          f'{family[which].spec.label}, batch {batch_size}, init scale {init_scale:.3g}); '
          'lower the meta learning rate. The checkpoints before it are kept.')
    history.append({'step': step + 1, 'meta_loss': loss, 'task': family[which].spec.label,
                    'batch_size': batch_size, 'init_scale': init_scale})
    if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.meta_steps:
      log_path.write_text(''.join(json.dumps(r) + '\n' for r in history))
      manager.save(step + 1, args=ocp.args.StandardSave(
          {'meta_params': meta_params, 'opt_state': opt_state, 'step': np.asarray(step + 1)}))
      manager.wait_until_finished()
      recent = np.mean([h['meta_loss'] for h in history[-config.checkpoint_every:]])
      progress_lib.line(f'{name} meta-step {step + 1}/{config.meta_steps}: meta-loss '
                        f'{recent:.4g}', enabled=progress)
  manager.close()
  return MetaTrainResult(meta_params, history, traces)

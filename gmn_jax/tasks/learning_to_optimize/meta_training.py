"""Meta-training a learned optimizer on a family of optimizee tasks.

Each meta-step samples a task (an architecture of the family, a batch size, an initialisation
scale; `TaskFamily`), initialises a fresh optimizee and unrolls the learned optimizer on it.

- `'tbptt'` (the neural-graphs paper's protocol): an unroll of `unroll` inner steps; at each
  one the meta-loss is the optimizee's loss one step ahead on the same batch,
  `L(theta_t + delta(phi), batch_t)`, with theta_t detached, and the meta-gradient is the
  mean over the unroll (`lookahead='next'`: on the next, independent batch instead, so that a
  step that fits only its own batch is not rewarded). One meta-step per unroll. With `truncations` T > 1 an inner run is T
  unrolls long: the optimizee and the optimizer state (its step count included) persist from
  one meta-step to the next (one run per architecture) and restart after T unrolls, so that
  the meta-loss covers T * `unroll` inner steps (truncated backpropagation over a long run);
  T = 1 re-initialises the optimizee every unroll.
- `'pes'` (persistent evolution strategies, Vicol et al. 2021, as UNF uses: 16 particles,
  truncation 50, sigma 0.01): `particles` antithetic pairs of optimizees persist across
  meta-steps (one set per architecture); each meta-step runs one truncation of `unroll`
  steps per member with perturbations +-eps, and the meta-gradient is the mean of the
  accumulated perturbations xi times the loss difference, `xi (L+ - L-) / (2 sigma^2)`;
  a pair that reaches `horizon` inner steps restarts from a fresh optimizee with xi = 0.
  The particles are not checkpointed: a resumed run restarts them (the meta-parameters and
  the meta-optimizer state resume exactly).

The meta-optimizer is AdamW with cosine decay over the meta-steps (3e-4, weight decay 1e-4 in
the paper). The meta-step is one jitted program per optimizee architecture (a batch size and
an initialisation scale are traced values), checked with a trace counter. Meta-parameters
and the meta-optimizer state are saved every `checkpoint_every` meta-steps in a
`RunDirectory` (with the meta-loss per meta-step in `log.jsonl`); a killed run resumes from
the last checkpoint.
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

from gmn_jax import progress as progress_lib
from gmn_jax.tasks.learning_to_optimize.optimizees import Optimizee
from gmn_jax.training.learned_optimizer import LearnedOptimizer, Stabilisers
from gmn_jax.training.run_directory import RunDirectory

ESTIMATORS = ('tbptt', 'pes')
LOOKAHEADS = ('same', 'next')


@dataclasses.dataclass(frozen=True)
class MetaTrainConfig:
  """Meta-training settings.

  Attributes:
    meta_steps: meta-gradient steps.
    unroll: inner steps per meta-step (the truncation).
    truncations: TBPTT unrolls per inner run (the optimizee persists across them).
    lookahead: the batch TBPTT's look-ahead loss reads: `'same'` (the step's own batch, the
      paper's) or `'next'` (an independent batch).
    learning_rate: peak meta learning rate (cosine decay to 0 over `meta_steps`).
    weight_decay: AdamW weight decay.
    clip_norm: meta-gradient clipping.
    estimator: `'tbptt'` or `'pes'`.
    particles: PES antithetic pairs.
    sigma: PES perturbation standard deviation.
    horizon: PES inner steps before a pair restarts.
    batch_sizes: inner batch sizes sampled per meta-step.
    init_scales: range of the sampled (log-uniform) initialisation scale.
    checkpoint_every: meta-steps between checkpoints.
    seed: seeds the rule's initialisation and the task sampling.
  """

  meta_steps: int = 100
  unroll: int = 50
  truncations: int = 1
  lookahead: str = 'same'
  learning_rate: float = 1e-3
  weight_decay: float = 1e-4
  clip_norm: float = 1.0
  estimator: str = 'tbptt'
  particles: int = 16
  sigma: float = 0.01
  horizon: int = 200
  batch_sizes: tuple[int, ...] = (32, 64, 128)
  init_scales: tuple[float, float] = (0.5, 2.0)
  checkpoint_every: int = 25
  seed: int = 0


def _tbptt_step(lopt: LearnedOptimizer, task: Optimizee, unroll: int, truncations: int,
                lookahead: str = 'same'):
  """`(init_run, run)`: `init_run(meta_params, key, init_scale)` gives a `(params, state)`
  about to restart; `run(meta_params, (params, state), key, batch_size, init_scale) -> (mean
  look-ahead loss, meta-gradient, (params, state))` restarts from a fresh optimizee when
  the state has taken a multiple of `unroll * truncations` steps, then unrolls."""
  length = unroll * truncations

  def init_run(meta_params, key, init_scale):
    del meta_params
    params = task.init(key, init_scale)
    return params, lopt.init_state(params)

  def run(meta_params, carry, key, batch_size, init_scale):
    k_init, k_data = jax.random.split(key)
    fresh = task.init(k_init, init_scale)
    restart = carry[1].step % length == 0
    params = jax.tree.map(lambda a, b: jnp.where(restart, a, b), fresh, carry[0])
    state = jax.tree.map(lambda a, b: jnp.where(restart, a, b), lopt.init_state(fresh),
                         carry[1])

    def inner(carry, key):
      params, state, grad_sum = carry
      batch = task.batch(key, batch_size)
      grads = jax.grad(task.loss)(params, batch)
      target = (batch if lookahead == 'same'
                else task.batch(jax.random.fold_in(key, 1), batch_size))

      def ahead(phi):
        updates, new_state = lopt.step(phi, params, grads, state)
        return task.loss(optax.apply_updates(params, updates), target), (updates, new_state)

      (loss, (updates, state)), g = jax.value_and_grad(ahead, has_aux=True)(meta_params)
      params = jax.lax.stop_gradient(optax.apply_updates(params, updates))
      state = jax.lax.stop_gradient(state)
      return (params, state, jax.tree.map(jnp.add, grad_sum, g)), loss

    zero = jax.tree.map(jnp.zeros_like, meta_params)
    (params, state, grad_sum), losses = jax.lax.scan(inner, (params, state, zero),
                                                     jax.random.split(k_data, unroll))
    return jnp.mean(losses), jax.tree.map(lambda g: g / unroll, grad_sum), (params, state)

  return init_run, run


def _pes_step(lopt: LearnedOptimizer, task: Optimizee, config: MetaTrainConfig):
  """Persistent ES (see the module docstring): `(init_particles, run)`.

  `init_particles(key, init_scale)` gives fresh particles: for each of the `particles` pairs
  the optimizee parameters and optimizer state of its + and - member, the accumulated
  perturbation xi (meta-parameter shaped) and the steps taken. `run(meta_params, particles,
  key, batch_size, init_scale)` advances every pair by one truncation and returns
  `(mean loss, meta-gradient, particles)`; pairs that reach `horizon` steps start again.
  """
  n, sigma, unroll = config.particles, config.sigma, config.unroll

  def fresh(key, init_scale):
    params = task.init(key, init_scale)
    return params, lopt.init_state(params)

  def init_particles(meta_params, key, init_scale):
    params, state = jax.vmap(lambda k: fresh(k, init_scale))(jax.random.split(key, n))
    xi = jax.tree.map(lambda l: jnp.zeros((n,) + l.shape, l.dtype), meta_params)
    return {'plus': (params, state), 'minus': (params, state), 'xi': xi,
            't': jnp.zeros((n,), jnp.int32)}

  def truncation(meta_params, member, key, batch_size):
    def inner(carry, key):
      params, state = carry
      batch = task.batch(key, batch_size)
      loss, grads = jax.value_and_grad(task.loss)(params, batch)
      updates, state = lopt.step(meta_params, params, grads, state)
      return (optax.apply_updates(params, updates), state), loss

    member, losses = jax.lax.scan(inner, member, jax.random.split(key, unroll))
    return member, jnp.mean(jnp.where(jnp.isfinite(losses), losses, 1e3))

  def run(meta_params, particles, key, batch_size, init_scale):
    k_noise, k_data, k_reset = jax.random.split(key, 3)
    leaves, treedef = jax.tree.flatten(meta_params)
    noise = jax.tree.unflatten(treedef, [
        sigma * jax.random.normal(k, (n,) + l.shape, l.dtype)
        for k, l in zip(jax.random.split(k_noise, len(leaves)), leaves)])

    def pair(eps, plus, minus, k):  # both members see the same batches
      plus, l_plus = truncation(jax.tree.map(jnp.add, meta_params, eps), plus, k, batch_size)
      minus, l_minus = truncation(jax.tree.map(jnp.subtract, meta_params, eps), minus, k,
                                  batch_size)
      return plus, minus, l_plus, l_minus

    plus, minus, l_plus, l_minus = jax.lax.map(
        lambda a: pair(*a), (noise, particles['plus'], particles['minus'],
                             jax.random.split(k_data, n)))
    xi = jax.tree.map(jnp.add, particles['xi'], noise)
    weight = (l_plus - l_minus) / (2 * sigma ** 2 * n)
    grad = jax.tree.map(lambda x: jnp.tensordot(weight, x, 1), xi)
    t = particles['t'] + unroll
    done = t >= config.horizon
    restart = jax.vmap(lambda k: fresh(k, init_scale))(jax.random.split(k_reset, n))
    pick = lambda new, old: jax.tree.map(
        lambda a, b: jnp.where(done.reshape((n,) + (1,) * (a.ndim - 1)), a, b), new, old)
    zeros = jax.tree.map(jnp.zeros_like, xi)
    particles = {'plus': pick(restart, plus), 'minus': pick(restart, minus),
                 'xi': pick(zeros, xi), 't': jnp.where(done, 0, t)}
    return jnp.mean((l_plus + l_minus) / 2), grad, particles

  return init_particles, run


@dataclasses.dataclass
class MetaTrainResult:
  """Meta-trained parameters and the log: one `{'step', 'meta_loss', 'task'}` per step."""

  meta_params: Any
  history: list[dict[str, Any]]
  compilations: dict[str, int]


def meta_train(rule: nn.Module, family: Sequence[Optimizee], config: MetaTrainConfig,
               workdir: str | pathlib.Path, name: str, progress: bool = True,
               stabilisers: Stabilisers = Stabilisers()) -> MetaTrainResult:
  """Meta-trains `rule` on tasks drawn from `family`. Host-side driver.

  Args:
    rule: an update rule of `gmn_jax.training.update_rules`.
    family: the optimizee architectures (each with its data) tasks are drawn from.
    config: the settings.
    workdir: `workdir/name` holds `run.json`, `log.jsonl` and orbax `checkpoints/`.
    name: the run's name.
    progress: a progress bar (one line per checkpoint off a terminal).
    stabilisers: the learned optimizer's features and step formula.

  Returns:
    The meta-parameters after the last step, the log and the number of compilations of the
    meta-step per architecture (1 each, whatever the batch sizes and scales drawn).

  Raises:
    ValueError: an unknown estimator, or a run directory holding a different run.
    FloatingPointError: a non-finite meta-loss (the checkpoints before it are kept).
  """
  if config.estimator not in ESTIMATORS:
    raise ValueError(f'unknown estimator {config.estimator!r}; choose from {ESTIMATORS}')
  if config.lookahead not in LOOKAHEADS:
    raise ValueError(f'unknown lookahead {config.lookahead!r}; choose from {LOOKAHEADS}')
  if config.truncations < 1:
    raise ValueError(f'truncations must be at least 1, got {config.truncations}')
  described = {'rule': repr(rule), 'config': {
                   k: v for k, v in dataclasses.asdict(config).items()
                   if k != 'lookahead' or v != 'same'},  # older runs keep their description
               'family': [dataclasses.asdict(t.spec) for t in family]}
  if stabilisers != Stabilisers():  # runs without stabilisers keep their old description
    described['stabilisers'] = {k: v for k, v in dataclasses.asdict(stabilisers).items()
                                if stabilisers.base != 'none' or not k.startswith('base')}
  run = RunDirectory(pathlib.Path(workdir) / name, json.loads(json.dumps(described,
                                                                         default=str)))
  try:
    lopts = [LearnedOptimizer(rule, task.pg, stabilisers) for task in family]
    tx = optax.chain(optax.clip_by_global_norm(config.clip_norm), optax.adamw(
        optax.cosine_decay_schedule(config.learning_rate, max(config.meta_steps, 1)),
        weight_decay=config.weight_decay))
    meta_params = lopts[0].init_meta_params(jax.random.key(config.seed))
    state = {'meta_params': meta_params, 'opt_state': tx.init(meta_params), 'step': np.asarray(0)}
    state, history = run.restore(state, 'step')
    traces = {t.spec.label: 0 for t in family}

    def compiled(lopt, task):
      """`(meta_step, init_particles)` of one architecture; TBPTT's 'particles' are its
      persistent optimizee and optimizer state."""
      if config.estimator == 'tbptt':
        init_particles, estimate = _tbptt_step(lopt, task, config.unroll, config.truncations,
                                               config.lookahead)
      else:
        init_particles, estimate = _pes_step(lopt, task, config)

      @jax.jit
      def meta_step(meta_params, opt_state, particles, key, batch_size, init_scale):
        traces[task.spec.label] += 1
        loss, grads, particles = estimate(meta_params, particles, key, batch_size, init_scale)
        updates, opt_state = tx.update(grads, opt_state, meta_params)
        return optax.apply_updates(meta_params, updates), opt_state, particles, loss
      return meta_step, jax.jit(init_particles)

    steps = [compiled(l, t) for l, t in zip(lopts, family)]
    particles: dict[int, Any] = {}
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
      meta_step, init_particles = steps[which]
      if which not in particles:
        particles[which] = init_particles(meta_params, jax.random.fold_in(key, 1), init_scale)
      meta_params, opt_state, particles[which], loss = meta_step(
          meta_params, opt_state, particles[which], key, batch_size, init_scale)
      loss = float(loss)
      if not np.isfinite(loss):
        raise FloatingPointError(
            f'{name}: the meta-loss is not finite at meta-step {step + 1} (task '
            f'{family[which].spec.label}, batch {batch_size}, init scale {init_scale:.3g}); '
            'lower the meta learning rate. The checkpoints before it are kept.')
      history.append({'step': step + 1, 'meta_loss': loss, 'task': family[which].spec.label,
                      'batch_size': batch_size, 'init_scale': init_scale})
      if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.meta_steps:
        run.save(step + 1, {'meta_params': meta_params, 'opt_state': opt_state,
                            'step': np.asarray(step + 1)}, history)
        recent = np.mean([h['meta_loss'] for h in history[-config.checkpoint_every:]])
        progress_lib.line(f'{name} meta-step {step + 1}/{config.meta_steps}: meta-loss '
                          f'{recent:.4g}', enabled=progress)
  finally:  # a checkpoint still being written is finished, whatever happened
    run.close()
  return MetaTrainResult(meta_params, history, traces)

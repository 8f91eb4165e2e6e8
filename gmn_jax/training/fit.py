"""Fitting a metanetwork to per-graph targets: one compiled step, checkpoints, resumption.

`fit` trains any Flax module `GraphsTuple -> GraphsTuple` (whose `globals` hold one
prediction per graph) on a `GraphSet` with optax (AdamW, linear warm-up then cosine decay,
gradient clipping), validates every epoch and keeps the parameters of the best validation
score: Kendall τ by default (`loss='mse'`: regression of a sigmoid output;
`TrainConfig.select='r2'` picks on R² instead, for tasks scored on R²) or accuracy
(`loss='cross_entropy'`: classification, `globals` holding one logit per class and the
targets class ids). The whole train state (with the best-validation parameters so far) is
checkpointed in a `RunDirectory` every `TrainConfig.checkpoint_every` epochs and at the last
epoch, and the log after every epoch; a killed run started again with the same arguments
resumes at its last checkpoint and ends with the same parameters and log as an uninterrupted
run, because the data order and augmentation of each epoch depend only on (seed, epoch).
The model's initial parameters come from one compiled program with batched random draws
(`gmn_jax.training.init_program.init_params`), not from Flax's op-by-op `init`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from gmn_jax import mesh as mesh_lib
from gmn_jax import progress as progress_lib
from gmn_jax.training import metrics
from gmn_jax.training.losses import pairwise_logistic
from gmn_jax.training.graph_set import GraphSet
from gmn_jax.training.init_program import init_params
from gmn_jax.training.run_directory import RunDirectory, model_fields, rows_digest


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Optimisation settings (defaults from Kofinas et al. 2024: AdamW 1e-3, wd 5e-4, clip 10)."""

  epochs: int = 30
  batch_size: int = 32
  learning_rate: float = 1e-3
  weight_decay: float = 5e-4
  warmup_fraction: float = 0.05
  clip_norm: float = 10.0
  augment: bool = True  # random symmetries of the training graphs, drawn per sample
  max_scale: float = 2.0  # with augment: ReLU rescaling range and tanh/sin sign flips; 1 = off
  seed: int = 0
  loss: str = 'mse'  # 'mse' (sigmoid output vs target) or 'cross_entropy' (class logits)
  # Checkpoint cadence in epochs (the last epoch is always saved). Not part of a run's
  # identity: a run resumes with another cadence, and the cadence never changes the result.
  checkpoint_every: int = 5
  # The validation score that picks the kept epoch (higher is better): None for the loss's
  # default (the first of `SELECTS[loss]`), or one of `SELECTS[loss]` (e.g. 'r2' for a task
  # scored on R²).
  select: str | None = None
  # With loss='mse': add this times RankNet's pairwise logistic loss over each batch's pairs
  # of pre-sigmoid outputs (`losses.pairwise_logistic`), for tasks scored on Kendall τ whose
  # targets bunch up (0: squared error alone).
  rank_weight: float = 0.0

  def __post_init__(self):
    if self.loss not in LOSSES:
      raise ValueError(f'unknown loss {self.loss!r}; choose from {LOSSES}')
    if self.select is not None and self.select not in SELECTS[self.loss]:
      raise ValueError(f'select={self.select!r} is not a validation score of '
                       f'loss={self.loss!r}; choose from {SELECTS[self.loss]} (or None)')
    if self.rank_weight < 0 or (self.rank_weight and self.loss != 'mse'):
      raise ValueError(f"rank_weight must be >= 0 and needs loss='mse'; got {self.rank_weight} "
                       f'with loss={self.loss!r}')
    if self.checkpoint_every < 1:
      raise ValueError(f'checkpoint_every must be >= 1, got {self.checkpoint_every}')


LOSSES = ('mse', 'cross_entropy')
# The validation scores (higher is better) that may pick the kept epoch, per loss; the first
# is the loss's default.
SELECTS = {'mse': ('kendall_tau', 'r2'), 'cross_entropy': ('accuracy',)}


def selection_key(config: TrainConfig) -> str:
  """The history key whose best value picks the kept epoch (`'val_kendall_tau'`, ...)."""
  return 'val_' + (config.select or SELECTS[config.loss][0])


@dataclasses.dataclass
class FitResult:
  """Best-validation parameters and the per-epoch history."""

  params: Any
  history: list[dict[str, float]]
  best_epoch: int


def _optimizer(config: TrainConfig, steps: int) -> optax.GradientTransformation:
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, config.learning_rate, max(1, int(config.warmup_fraction * steps)), max(steps, 2))
  return optax.chain(optax.clip_by_global_norm(config.clip_norm),
                     optax.adamw(schedule, weight_decay=config.weight_decay))


def _run_identity(model: nn.Module, config: TrainConfig, train: np.ndarray,
                  val: np.ndarray) -> dict[str, Any]:
  """What a run directory's checkpoints were trained with, as `run.json` reads back: enough
  to refuse resuming a different run (functions by name, index sets by digest)."""
  settings = dataclasses.asdict(config)
  del settings['checkpoint_every']  # how often it is saved does not change the run
  if settings['select'] is None:  # the loss's default: as runs saved before the field existed
    del settings['select']
  if not settings['rank_weight']:  # squared error alone: as runs saved before the field existed
    del settings['rank_weight']
  identity = {'model': type(model).__name__, 'model_fields': model_fields(model),
              'train_config': settings, 'train_rows': rows_digest(train),
              'val_rows': rows_digest(val)}
  return json.loads(json.dumps(identity))  # tuples -> lists, as they compare after saving


def _predict_fn(model: nn.Module, loss: str = 'mse', sharded: bool = False,
                logits: bool = False):
  def predict(params, graphs):
    out = model.apply(params, graphs).globals
    if loss != 'mse':
      return out
    return out[:, 0] if logits else jax.nn.sigmoid(out[:, 0])
  # Data parallel: graphs stacked [shards, ...], one sub-batch per device of the 'data' axis.
  return jax.vmap(predict, in_axes=(None, 0)) if sharded else predict


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, loss: str = 'mse',
                    mesh: Mesh | None = None, traces: dict[str, int] | None = None,
                    rank_weight: float = 0.0) -> Callable:
  """The jitted train step `fit` runs: `(params, opt_state, graphs, targets, mask) ->
  (params, opt_state, loss)`, the loss masked to the real graphs (`mask`) and averaged over
  them (plus `rank_weight` times the pairwise logistic loss over the batch's pairs,
  `losses.pairwise_logistic`, when positive), one optax update of its gradient.

  Without a mesh, `graphs` is one padded batch and `targets`, `mask` are `[n_graph]`. With a
  mesh, they are stacked `[n_data, ...]` sub-batches placed over its `'data'` axis
  (`gmn_jax.mesh.place_batch`) and the state as `gmn_jax.mesh.place_state` places it: each
  device runs the metanetwork on its own whole graphs (a `vmap` over the sub-batches, which
  XLA's SPMD partitioner splits over `'data'`), and the one compiled program sums the loss's
  terms and the gradient across the devices after the backward pass: no collective inside a
  loop, no array gathered (`gmn_jax.mesh.collectives`; `benchmarks/data_parallel.py` times it
  against one device). The updated state keeps `place_state`'s shardings.
  `traces['train_step']` (when given) counts the traces, i.e. the compilations. Host-side
  builder of a jitted function.
  """
  logits_fn = _predict_fn(model, loss, mesh is not None, logits=True)

  def train_step(params, opt_state, graphs, targets, mask):
    if traces is not None:
      traces['train_step'] += 1

    def loss_fn(p):
      if loss == 'cross_entropy':
        error = optax.softmax_cross_entropy_with_integer_labels(
            logits_fn(p, graphs), targets.astype(jnp.int32))
        return jnp.sum(jnp.where(mask, error, 0.0)) / jnp.maximum(mask.sum(), 1)
      logits = logits_fn(p, graphs)
      error = jnp.where(mask, jax.nn.sigmoid(logits) - targets, 0.0)
      value = jnp.sum(error ** 2) / jnp.maximum(mask.sum(), 1)
      if rank_weight:
        value = value + rank_weight * pairwise_logistic(logits, targets, mask)
      return value
    value, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if mesh is not None:
      params, opt_state = jax.lax.with_sharding_constraint(
          (params, opt_state), mesh_lib.state_shardings((params, opt_state), mesh))
    return params, opt_state, value

  return jax.jit(train_step, out_shardings=None if mesh is None else (
      None, None, mesh_lib.replicated(mesh)))


class _Placement:
  """Where a run's batches and state live: one device (all no-ops, today's path) or a
  mesh (`mesh.py`: sub-batches over `'data'`, the state replicated or FSDP-sharded)."""

  def __init__(self, mesh: Mesh | None, batch_size: int):
    self.mesh = mesh_lib.current_mesh(mesh)
    self.shards = 1 if self.mesh is None else mesh_lib.data_shards(self.mesh)
    self.shard_size = (batch_size if self.mesh is None
                       else mesh_lib.check_batch_size(batch_size, self.mesh))

  def batches(self, data: GraphSet, indices, batch_size, budget, *args):
    for graphs, targets, mask in data.batches(indices, batch_size, budget, *args,
                                              shards=self.shards):
      if self.mesh is None:
        yield graphs, targets, mask, mask
      else:  # device arrays, and the host mask to pick out the predictions
        if self.shards == 1:  # a one-device mesh: still the stacked layout the step expects
          graphs, targets, mask = jax.tree.map(lambda a: a[None], (graphs, targets, mask))
        yield mesh_lib.place_batch(graphs, self.mesh), *mesh_lib.place_batch(
            (targets, mask), self.mesh), mask

  def state(self, state):
    return state if self.mesh is None else mesh_lib.place_state(state, self.mesh)

  def jit(self, fn, out_shardings=None):
    if self.mesh is None:
      return jax.jit(fn)
    return jax.jit(fn, out_shardings=out_shardings or mesh_lib.replicated(self.mesh))


def predict(model: nn.Module, params, data: GraphSet, indices: np.ndarray,
            batch_size: int = 64, mesh: Mesh | None = None, loss: str = 'mse') -> np.ndarray:
  """Predictions for `data[indices]`, in order: `[n]` sigmoid of the first output
  (`loss='mse'`) or `[n, classes]` logits (`'cross_entropy'`). Host-side driver.

  With a mesh (the argument, or one set by `jax.set_mesh`) the batches are split over its
  `'data'` axis (`batch_size` must be a multiple of its size); the predictions are the same.
  """
  place = _Placement(mesh, batch_size)
  budget = data.budget(place.shard_size)
  fn = place.jit(_predict_fn(model, loss, place.mesh is not None))
  params = place.state(params)
  out = [np.asarray(fn(params, g))[m]
         for g, _, _, m in place.batches(data, indices, batch_size, budget)]
  return np.concatenate(out) if out else np.zeros(0, np.float32)


def fit(model: nn.Module, data: GraphSet, train: np.ndarray, val: np.ndarray,
        config: TrainConfig, workdir: str | pathlib.Path, name: str = 'model',
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
        progress: bool = True, mesh: Mesh | None = None) -> FitResult:
  """Trains `model` on `data[train]` (MSE between sigmoid output and target, or cross-entropy
  of class logits, per `config.loss`), validating on
  `data[val]` each epoch. Host-side driver around one jitted train step.

  Args:
    model: a Flax module mapping a padded batch to a GraphsTuple with `globals` [n_graph, >=1].
    data: the graphs and targets.
    train, val: sample indices.
    config: optimisation settings.
    workdir: checkpoints go to `workdir/name/checkpoints`, metrics to `workdir/name/log.jsonl`.
    name: the run's name (a folder in `workdir`).
    on_epoch_end: called with (epoch, metrics) after each epoch's log record (and, every
      `config.checkpoint_every` epochs and at the last, its checkpoint) is written.
    progress: show a progress bar.
    mesh: train data-parallel over this mesh's `'data'` axis (None: the mesh set with
      `jax.set_mesh`, if any, else one device). Each batch is split into one sub-batch of
      `batch_size / n_data` graphs per shard; the losses and predictions are those of one
      device, up to float rounding. The mesh is not part of the run's identity: a run
      resumes on another mesh shape (or on one device) from its checkpoints.

  Returns:
    The parameters of the epoch with the best validation score (`config.select`; by default
    Kendall τ, or accuracy for `config.loss='cross_entropy'`), and the history.

  Raises:
    ValueError: if `workdir/name` holds checkpoints of a run with another model, config or
      split (`run.json` records them), which cannot be resumed.
    FloatingPointError: if the training loss stops being finite (the message names the
      batch's samples); nothing is saved for that epoch.
  """
  run_dir = pathlib.Path(workdir) / name
  place = _Placement(mesh, config.batch_size)  # a batch the mesh cannot split: refused first
  run = RunDirectory(run_dir, _run_identity(model, config, train, val),
                     model_fields(model, defaults=True))
  try:
    return _fit(model, data, train, val, config, run, name, on_epoch_end, progress, place)
  finally:  # a checkpoint still being written (asynchronously) is finished, whatever happened
    run.close()


def _fit(model: nn.Module, data: GraphSet, train: np.ndarray, val: np.ndarray,
         config: TrainConfig, run: RunDirectory, name: str,
         on_epoch_end: Callable[[int, dict[str, float]], None] | None, progress: bool,
         place: _Placement) -> FitResult:
  """`fit`'s body, with its run directory open (`fit` closes it)."""
  budget = data.budget(place.shard_size)
  # Each epoch's order, and so its steps (a packed batch may close early), is known up front.
  plans = [data.steps(np.random.default_rng([config.seed, epoch]).permutation(train),
                      config.batch_size, budget, place.shards) for epoch in range(config.epochs)]
  tx = _optimizer(config, sum(len(plan) for plan in plans))
  first, _, _ = next(data.batches(train[:1], config.batch_size, budget))
  params = init_params(model, jax.random.key(config.seed), first)
  state = {'params': params, 'opt_state': jax.jit(tx.init)(params), 'best_params': params,
           'epoch': np.asarray(0), 'best_epoch': np.asarray(-1),
           'best_tau': np.asarray(-np.inf, np.float32)}
  state = place.state(state)  # restored onto this placement, whatever the run saved on
  state, history = run.restore(state, 'epoch')
  predict_fn = _predict_fn(model, config.loss, place.mesh is not None)
  select = selection_key(config)
  traces = {'train_step': 0}
  train_step = make_train_step(model, tx, config.loss, place.mesh, traces, config.rank_weight)
  evaluate = place.jit(predict_fn)
  for epoch in range(int(state['epoch']), config.epochs):
    rng = np.random.default_rng([config.seed, epoch])
    order = rng.permutation(train)
    params, opt_state, losses = state['params'], state['opt_state'], []
    steps = plans[epoch]
    batches = place.batches(data, order, config.batch_size, budget,
                            rng if config.augment else None, config.max_scale)

    def finite(step: int, loss: jax.Array) -> float:
      loss = float(loss)
      if not np.isfinite(loss):  # stop before a checkpoint saves NaN parameters
        chunk = np.concatenate(steps[step])
        raise FloatingPointError(
            f'{name}: the training loss is not finite at epoch {epoch + 1}, step {step + 1}; '
            f'the batch held samples {chunk.tolist()}. Their inputs are probably huge or not '
            'finite (e.g. diverged networks): drop them and start again. The checkpoints of '
            'the epochs before are kept.')
      return loss

    # A step's loss is read after the next step is dispatched: the host builds (and augments)
    # the next batch while the device runs this step, instead of waiting for it.
    pending = None
    for step, (graphs, targets, mask, _) in enumerate(progress_lib.bar(
        batches, enabled=progress, total=len(steps),
        desc=f'{name} epoch {epoch + 1}/{config.epochs}', leave=False)):
      params, opt_state, loss = train_step(params, opt_state, graphs, targets, mask)
      if pending is not None:
        losses.append(finite(*pending))
      pending = (step, loss)
    if pending is not None:
      losses.append(finite(*pending))
    record = {'epoch': epoch + 1, 'train_loss': float(np.mean(losses))}
    if len(val):
      preds = np.concatenate([np.asarray(evaluate(params, g))[m] for g, _, _, m in
                              place.batches(data, val, config.batch_size, budget)])
      score = metrics.regression if config.loss == 'mse' else metrics.classification
      record.update({f'val_{k}': v for k, v in score(data.targets[val], preds).items()})
    else:  # nothing to validate on: keep the last epoch
      record[select] = float('nan')
    history.append(record)
    progress_lib.line(f'{name} epoch {epoch + 1}/{config.epochs}: ' + ', '.join(
        f'{k} {v:.4g}' for k, v in record.items() if k != 'epoch'), enabled=progress)
    improved = not len(val) or record[select] > float(state['best_tau'])
    state = {'params': params, 'opt_state': opt_state,
             'best_params': params if improved else state['best_params'],
             'epoch': np.asarray(epoch + 1),
             'best_epoch': np.asarray(epoch + 1) if improved else state['best_epoch'],
             'best_tau': np.asarray(record[select] if improved
                                    else state['best_tau'], np.float32)}
    run.save(epoch + 1, state, history, checkpoint=(
        (epoch + 1) % config.checkpoint_every == 0 or epoch + 1 == config.epochs))
    if on_epoch_end is not None:
      on_epoch_end(epoch + 1, record)
  if traces['train_step'] > 1:
    raise AssertionError(f'the train step compiled {traces["train_step"]} times; the padding '
                         'budget should make it compile once')
  return FitResult(state['best_params'], history, int(state['best_epoch']))

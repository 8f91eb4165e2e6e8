"""Training one INR-editing method: one jitted step on the rendered MSE, checkpointed every
epoch in a `RunDirectory` (written in the background while the next epoch trains), evaluated
at its best validation epoch. Host-side driver."""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gmn_jax import progress as progress_lib
from gmn_jax.tasks.inr_editing.config import EditingConfig
from gmn_jax.tasks.inr_editing.data import EditingData
from gmn_jax.tasks.inr_editing.methods import REGISTRY
from gmn_jax.training.fit import init_params
from gmn_jax.training.run_directory import RunDirectory


def _evaluate(data: EditingData, eval_fn, params, rows: np.ndarray,
              n_pictures: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(per-INR MSE `[len(rows)]`, the first `n_pictures` edited images) of `data[rows]`."""
  mses, pictures = [], []
  for r, m in data.batches(rows):
    images, mse = eval_fn(params, data.weight[r], data.param[r], data.targets[r])
    mses.append(np.asarray(mse)[m])
    if sum(len(p) for p in pictures) < n_pictures:
      pictures.append(np.asarray(images)[m])
  pictures = np.concatenate(pictures)[:n_pictures] if pictures else np.zeros((0,))
  return np.concatenate(mses), pictures


def train_method(name: str, data: EditingData, config: EditingConfig, progress: bool = True,
                 run_dir: pathlib.Path | None = None,
                 on_epoch_end: Callable[[int, dict[str, float]], None] | None = None
                 ) -> dict[str, Any]:
  """Trains one method (host-side driver of one jitted step) and evaluates it at its best
  validation epoch.

  Args:
    name: a key of `methods.REGISTRY`.
    data: the encoded zoo and its split.
    config: the run's config.
    progress: show progress bars (a line per epoch when not on a terminal).
    run_dir: where the train state is checkpointed every epoch (orbax) with the history
      (`log.jsonl`); a run killed mid-training resumes at its last finished epoch, with the
      same result because each epoch's batch order depends only on (seed, epoch). None: no
      checkpoints.
    on_epoch_end: called with (epoch, history record) after each epoch's checkpoint.

  Returns:
    `{'test_mse': [n_test] per INR, 'val_mse', 'history', 'best_epoch', 'seconds',
    'pictures': [n_pictures, H, W, C] edited test images}`.
  """
  tic = time.time()
  build = REGISTRY[name].build
  model = None if build is None else build(config, data.pg)

  def eval_fn(params, weight, param, targets):
    images = data.edited_images(model, params, weight, param)
    return images, jnp.mean((images - targets) ** 2, axis=(1, 2, 3))
  eval_jit = jax.jit(eval_fn)
  params, history, best_epoch = None, [], 0
  if model is not None:
    train = data.split['train']
    steps = config.epochs * -(-len(train) // config.batch_size)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, max(1, steps // 20), max(steps, 2))
    tx = optax.chain(optax.clip_by_global_norm(config.clip_norm),
                     optax.adamw(schedule, weight_decay=config.weight_decay))
    params = init_params(model, jax.random.key(config.seed), data.graphs(
        jnp.asarray(data.weight[:config.batch_size]), jnp.asarray(data.param[:config.batch_size])))
    state = {'params': params, 'opt_state': jax.jit(tx.init)(params), 'best_params': params,
             'epoch': np.asarray(0), 'best_epoch': np.asarray(0),
             'best_val': np.asarray(np.inf, np.float32), 'seconds': np.asarray(0.0)}
    checkpoints = None if run_dir is None else RunDirectory(run_dir)
    try:
      if checkpoints is not None:
        state, history = checkpoints.restore(state, 'epoch')
      earlier = float(state['seconds'])  # of a killed process, when resumed

      @jax.jit
      def train_step(params, opt_state, weight, param, targets, mask):
        def loss_fn(p):
          mse = eval_fn(p, weight, param, targets)[1]
          return jnp.sum(jnp.where(mask, mse, 0.0)) / mask.sum()
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

      for epoch in range(int(state['epoch']), config.epochs):
        order = np.random.default_rng([config.seed, epoch]).permutation(train)
        params, opt_state, losses = state['params'], state['opt_state'], []
        for rows, mask in progress_lib.bar(list(data.batches(order)), enabled=progress,
                                           desc=f'{name} epoch {epoch + 1}', leave=False):
          params, opt_state, loss = train_step(params, opt_state, data.weight[rows],
                                               data.param[rows], data.targets[rows], mask)
          losses.append(float(loss))
        if not np.isfinite(losses[-1]):
          raise FloatingPointError(f'{name}: the training loss is not finite at epoch '
                                   f'{epoch + 1}; lower the learning rate.')
        val = float(_evaluate(data, eval_jit, params, data.split['val'])[0].mean())
        record = {'epoch': epoch + 1, 'train_mse': float(np.mean(losses)), 'val_mse': val}
        history.append(record)
        progress_lib.line(f'{name} epoch {epoch + 1}/{config.epochs}: train MSE '
                          f'{np.mean(losses):.5f}, val MSE {val:.5f}', enabled=progress)
        improved = val < float(state['best_val'])
        state = {'params': params, 'opt_state': opt_state,
                 'best_params': params if improved else state['best_params'],
                 'epoch': np.asarray(epoch + 1),
                 'best_epoch': np.asarray(epoch + 1) if improved else state['best_epoch'],
                 'best_val': np.asarray(val if improved else state['best_val'], np.float32),
                 'seconds': np.asarray(earlier + time.time() - tic)}
        if checkpoints is not None:
          checkpoints.save(epoch + 1, state, history)
        if on_epoch_end is not None:
          on_epoch_end(epoch + 1, record)
    finally:  # a checkpoint still being written is finished, whatever happened
      if checkpoints is not None:
        checkpoints.close()
    params, best_epoch = state['best_params'], int(state['best_epoch'])
    tic -= earlier
  test_mse, pictures = _evaluate(data, eval_jit, params, data.split['test'], config.n_pictures)
  return {'test_mse': test_mse,
          'val_mse': float(_evaluate(data, eval_jit, params, data.split['val'])[0].mean()),
          'history': history, 'best_epoch': best_epoch, 'seconds': time.time() - tic,
          'pictures': pictures}

"""Training the members of one architecture of the diverse zoo together, as one jitted program.

Every member of a shard has the same `NetSpec`; everything else is a per-member value inside
the program (vmapped): initialisation key, optimizer (Adam or SGD with momentum 0.9, both
computed and one kept), learning rate, decoupled weight decay, label smoothing, dropout on the
pooled features, activation (relu or tanh, both computed and one kept), fraction of the
training data and number of epochs (the program runs the largest number; a member's updates
stop after its own). A step whose loss or new parameters are not finite is skipped and the
member flagged `diverged`, so saved weights are always finite. BatchNorm trains on batch
statistics and saves its running ones. Only the final weights are kept; test and train
accuracy and loss are measured on the full splits at the end.
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gmn_jax.zoos import datasets as datasets_lib
from gmn_jax.zoos.diverse.models import DiverseNet, NetSpec
from gmn_jax.zoos.cnn.small_cnn import _conv_as_matmul  # pylint: disable=protected-access

METRICS = ('train_accuracy', 'train_loss', 'test_accuracy', 'test_loss')
_EVAL_CHUNK = 512
# XLA:CPU's backend optimisation is most of a shard program's compile time, and each
# architecture compiles once for few shards: compiling faster wins over running faster.
_COMPILER_OPTIONS = {'xla_backend_optimization_level': 0}


def _evaluate(apply, x, y, weight):
  """(accuracy, loss) of `apply(x_chunk) -> logits` over a whole split, chunked. Jittable."""
  n = x.shape[0]
  count = -(-n // _EVAL_CHUNK)
  size = -(-n // count)
  pad = count * size - n
  x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape(count, size, *x.shape[1:])
  y = jnp.pad(y, (0, pad)).reshape(count, size)
  weight = jnp.pad(weight, (0, pad)).reshape(count, size)

  def chunk(totals, batch):
    xb, yb, wb = batch
    out = apply(xb)
    loss = optax.softmax_cross_entropy_with_integer_labels(out, yb)
    correct = (jnp.argmax(out, -1) == yb).astype(jnp.float32)
    return totals + jnp.stack([jnp.sum(wb * correct), jnp.sum(wb * loss), jnp.sum(wb)]), None

  totals, _ = jax.lax.scan(chunk, jnp.zeros(3), (x, y, weight))
  return totals[:2] / jnp.maximum(totals[2], 1.0)


@functools.lru_cache(maxsize=8)
def _program(spec: NetSpec, size: int, input_shape: tuple[int, ...], num_classes: int,
             n_train: int, batch_size: int, max_epochs: int, seed: int):
  """The jitted program training `size` members of `spec` (cached: one compile per shape)."""
  steps = max(n_train // batch_size, 1)
  example = jnp.zeros((1, *input_shape), jnp.float32)
  has_stats = 'batch_stats' in jax.eval_shape(
      DiverseNet(spec, num_classes).init, jax.random.key(0), example)

  def model(act_code):
    act = lambda h: jnp.where(act_code == 1, jnp.tanh(h), nn.relu(h))
    return DiverseNet(spec, num_classes, activation=act, conv_general_dilated=_conv_as_matmul)

  def logits(variables, hp, x, key=None):
    kwargs = dict(dropout_rate=hp['dropout'], dropout_rng=key)
    if key is None or not has_stats:
      return model(hp['activation']).apply(variables, x, **kwargs), variables
    out, new = model(hp['activation']).apply(variables, x, train=True, mutable=['batch_stats'],
                                             **kwargs)
    return out, {**variables, **new}

  def step(variables, adam, momentum, hp, mask, key, active, x, y, batch):
    xb, yb, wb = x[batch], y[batch], mask[batch].astype(jnp.float32)

    def loss_fn(params):
      out, new = logits({**variables, 'params': params}, hp, xb, key)
      labels = optax.smooth_labels(jax.nn.one_hot(yb, num_classes), hp['label_smoothing'])
      ce = optax.softmax_cross_entropy(out, labels)
      return jnp.sum(wb * ce) / jnp.maximum(jnp.sum(wb), 1.0), new

    (loss, new), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables['params'])
    adam_dir, new_adam = optax.scale_by_adam().update(grads, adam)
    new_momentum = jax.tree.map(lambda m, g: 0.9 * m + g, momentum, grads)
    direction = jax.tree.map(lambda a, m: jnp.where(hp['optimizer'] == 0, a, m), adam_dir,
                             new_momentum)
    params = jax.tree.map(lambda p, d: p - hp['learning_rate'] * (d + hp['weight_decay'] * p),
                          variables['params'], direction)
    new = {**new, 'params': params}
    finite = jnp.isfinite(loss) & jnp.all(jnp.stack(
        [jnp.all(jnp.isfinite(l)) for l in jax.tree.leaves(new)]))
    keep = lambda a, b: jax.tree.map(lambda u, v: jnp.where(finite & active, u, v), a, b)
    return (keep(new, variables), keep(new_adam, adam), keep(new_momentum, momentum),
            ~finite & active)

  def program(hp, member_ids, x_train, y_train, x_test, y_test):
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(jax.random.key(seed), i), 3))(
        member_ids)
    variables = jax.vmap(lambda k: DiverseNet(spec, num_classes).init(k, example))(keys[:, 0])
    adam = jax.vmap(optax.scale_by_adam().init)(variables['params'])
    momentum = jax.tree.map(jnp.zeros_like, variables['params'])
    masks = jax.vmap(lambda k, f: jax.random.uniform(k, (n_train,)) < f)(
        keys[:, 1], hp['train_fraction'])

    def epoch_fn(carry, epoch):
      ks = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, epoch), steps + 1))(
          keys[:, 2])
      order = jax.vmap(lambda k: jax.random.permutation(k, n_train))(ks[:, 0])
      order = order[:, :steps * batch_size].reshape(size, steps, batch_size)
      active = epoch < hp['epochs']

      def one_step(inner, xs):
        *state, diverged = inner
        batch, step_keys = xs
        *state, bad = jax.vmap(step, in_axes=(0, 0, 0, 0, 0, 0, 0, None, None, 0))(
            *state, hp, masks, step_keys, active, x_train, y_train, batch)
        return (*state, diverged | bad), None

      carry, _ = jax.lax.scan(one_step, carry, (order.swapaxes(0, 1), ks[:, 1:].swapaxes(0, 1)))
      return carry, None

    carry = (variables, adam, momentum, jnp.zeros(size, bool))
    (variables, _, _, diverged), _ = jax.lax.scan(epoch_fn, carry, jnp.arange(max_epochs))

    def evaluate(v, hp, mask):
      apply = lambda x: logits(v, hp, x)[0]
      return jnp.concatenate([_evaluate(apply, x_train, y_train, mask.astype(jnp.float32)),
                              _evaluate(apply, x_test, y_test, jnp.ones(len(y_test)))])

    return variables, jax.vmap(evaluate)(variables, hp, masks), diverged

  return jax.jit(program, compiler_options=_COMPILER_OPTIONS)


def train_architecture(spec: NetSpec, member_ids: np.ndarray, hp: Mapping[str, np.ndarray],
                       data: datasets_lib.ImageDataset, *, batch_size: int, max_epochs: int,
                       seed: int, size: int | None = None) -> dict[str, Any]:
  """Trains members of one architecture together in one jitted program. Host-side wrapper.

  Args:
    spec: the members' architecture.
    member_ids: int `[m]` ids (they seed each member's initialisation, data and dropout).
    hp: per-member numeric codes, each `[m]`: `optimizer` (0 Adam, 1 SGD), `learning_rate`,
      `weight_decay`, `label_smoothing`, `dropout`, `activation` (0 relu, 1 tanh),
      `train_fraction`, `epochs`.
    data: training and test images.
    batch_size, max_epochs, seed: shared by the members.
    size: train this many (>= m; copies of the last member are dropped), so that shards of
      one architecture share one compilation.

  Returns:
    `{'variables': pytree with leaves [m, ...], 'metrics': {name: [m]}, 'diverged': bool [m]}`
    as numpy arrays.
  """
  member_ids = np.asarray(member_ids)
  m = len(member_ids)
  size = size or m
  pad = lambda a: np.concatenate([a, np.repeat(a[-1:], size - m)])
  program = _program(spec, size, tuple(data.input_shape), data.num_classes, len(data.x_train),
                     batch_size, max_epochs, seed)
  codes = {k: jnp.asarray(pad(np.asarray(v))) for k, v in hp.items()}
  variables, metrics, diverged = program(codes, jnp.asarray(pad(member_ids), jnp.int32),
                                         data.x_train, data.y_train, data.x_test, data.y_test)
  variables = jax.tree.map(lambda a: np.asarray(a)[:m], variables)
  metrics = np.asarray(metrics)[:m]
  return {'variables': variables,
          'metrics': {name: metrics[:, i] for i, name in enumerate(METRICS)},
          'diverged': np.asarray(diverged)[:m]}

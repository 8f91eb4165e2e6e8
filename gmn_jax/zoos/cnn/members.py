"""The zoo trainer: every member of a shard trains in one vmapped, jitted program.

Follows the Small CNN Zoo (Unterthiner et al. 2020) where it can (Keras' optimizers and
initialisers, L2 on kernels, dropout after every convolution, metrics at snapshot epochs, train
metrics on the member's own subset in eval mode) and departs, for speed on a CPU, as follows:

- Per-member hyperparameters are arrays: the optimizer, initialiser and activation are chosen
  per member inside one program (all candidates computed, one kept).
- A member trains on a fraction of the training set through a per-sample mask: all members take
  the same steps, and a member's loss averages over the samples of its batch that are in its
  subset. Each epoch still shows a member each of its samples once, but in smaller, noisier
  batches where the paper took fewer steps.
- A member's parameters are one flat vector, so the optimizers, the finiteness check and the
  snapshots act on one array each; convolutions run as patch matmuls; random draws are few
  and large. All three keep the program, and XLA's compile time, small.
- A step whose loss or new parameters are not finite is skipped and the member is flagged
  `diverged`, so every snapshot holds finite weights (the paper stopped such runs).
- Reported losses are the cross-entropy alone (Keras also added the L2 penalty).
"""

from __future__ import annotations

import functools
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from gmn_jax import mesh as mesh_lib
from gmn_jax.zoos import datasets as datasets_lib
from gmn_jax.zoos.cnn.small_cnn import _conv_as_matmul
from gmn_jax.zoos.cnn.config import CATEGORIES, HPARAMS, METRICS, ZooConfig

_TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated to [-2, 2]
_EVAL_BUDGET = 2**26  # floats of first-layer activations per evaluation chunk (256 MB)


class _FlatLayout:
  """Where each parameter leaf sits in a member's flat parameter vector. Host-side, static.

  The trainer keeps a member's parameters as one vector [P]: the optimizers, the finiteness
  check and the snapshots then act on one array instead of one per leaf, which keeps the
  program (and XLA's compile time, which dominates a CPU zoo) small.
  """

  def __init__(self, shapes_tree):
    paths_leaves, self.treedef = jax.tree_util.tree_flatten_with_path(shapes_tree)
    self.shapes = [tuple(leaf.shape) for _, leaf in paths_leaves]
    sizes = [int(np.prod(s)) for s in self.shapes]
    self.offsets = np.cumsum([0] + sizes)
    self.size = int(self.offsets[-1])
    kernel = [path[-1].key == 'kernel' for path, _ in paths_leaves]
    self.kernel_mask = np.concatenate([np.full(n, k, np.float32) for n, k in zip(sizes, kernel)])
    # Keras' variance-scaling stds (truncated normal, corrected for the truncation) per entry.
    he, glorot = [], []
    for shape, size, is_kernel in zip(self.shapes, sizes, kernel):
      fan_in = float(np.prod(shape[:-1]))
      fan_out = float(np.prod(shape[:-2]) * shape[-1])
      he.append(np.full(size, np.sqrt(2.0 / fan_in) / _TRUNCATED_STD * is_kernel))
      glorot.append(np.full(size, np.sqrt(2.0 / (fan_in + fan_out)) / _TRUNCATED_STD * is_kernel))
    self.he_std = np.concatenate(he).astype(np.float32)
    self.glorot_std = np.concatenate(glorot).astype(np.float32)

  def unflatten(self, flat):
    """Variables pytree from flat [..., P] (jnp or np; leading axes kept)."""
    lead = flat.shape[:-1]
    leaves = [flat[..., a:b].reshape(*lead, *shape)
              for a, b, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)]
    return jax.tree_util.tree_unflatten(self.treedef, leaves)

  def init(self, key, w_init, std):
    """One member's initial flat parameters: Keras' initialisers of the Small CNN Zoo, chosen
    by code `w_init` (W_INITS order); biases zero. Jittable.

    One uniform draw gives both the normal and the truncated-normal values (through one
    inverse CDF): every random call is one more kernel for XLA to compile.
    """
    u = jax.random.uniform(key, (2, self.size), minval=1e-7, maxval=1.0 - 1e-7)
    low, high = jax.scipy.stats.norm.cdf(-2.0), jax.scipy.stats.norm.cdf(2.0)
    z = jax.scipy.special.ndtri(u.at[1].set(low + u[1] * (high - low)))
    normal, truncated = z[0], z[1]
    return self.kernel_mask * jax.lax.select_n(
        w_init,
        truncated * self.he_std,  # he_normal
        truncated * self.glorot_std,  # glorot_normal
        normal * std,  # normal (Keras RandomNormal)
        truncated * std)  # truncated_normal (Keras TruncatedNormal: std before truncation)


def _optimizers(learning_rate):
  """Adam, RMSProp and SGD with Keras' defaults (the Small CNN Zoo's choices), in OPTIMIZERS
  order."""
  return (optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-7),
          optax.rmsprop(learning_rate, decay=0.9, eps=1e-7),
          optax.sgd(learning_rate))


def _eval_chunks(n: int, per_example: int, members: int) -> tuple[int, int]:
  """(number of chunks, chunk size) to evaluate n examples within `_EVAL_BUDGET`."""
  limit = max(1, min(n, _EVAL_BUDGET // max(1, per_example * members)))
  count = -(-n // limit)
  return count, -(-n // count)


@functools.lru_cache(maxsize=None)
def _shard_program(config: ZooConfig, width: int, members: int, input_shape: tuple[int, ...],
                   num_classes: int, n_train: int, n_test: int, matmul_conv: bool = True):
  """The jitted program that trains `members` networks of one width; built once per shape.

  `matmul_conv=False` trains with `lax` convolutions (for benchmarks/zoo_generation.py).

  Returns:
    `(program, layout)`: `program(hp, member_ids, x_train, y_train, x_test, y_test) ->
    (snapshots, metrics, diverged)` with `hp` a dict of [members] arrays (categorical ones as
    int codes), snapshots float32 [S, members, P] (flat parameters; `layout.unflatten` gives
    variables), metrics float32 [S, members, 4] (METRICS order) and diverged bool [members]
    (a step gave a non-finite loss or parameters and was skipped).
  """
  if config.batch_size > n_train:
    raise ValueError(f'batch_size {config.batch_size} > {n_train} training examples')
  epochs = config.snapshot_epochs[-1]
  slot_of_epoch = np.full(epochs + 1, -1, np.int32)
  slot_of_epoch[list(config.snapshot_epochs)] = np.arange(len(config.snapshot_epochs))
  steps = n_train // config.batch_size
  layout = _FlatLayout(jax.eval_shape(
      config.model(width, num_classes=num_classes).init, jax.random.key(0),
      jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)))
  per_example = int(np.prod(input_shape[:2])) * width
  train_chunks = _eval_chunks(n_train, per_example, members)
  test_chunks = _eval_chunks(n_test, per_example, members)

  def logits(flat, hp, x, dropout_rng=None):
    # One program for every member: both activations are computed and one kept, per member.
    act = lambda h: jnp.where(hp['activation'] == 1, jnp.tanh(h), nn.relu(h))
    model = config.model(width, num_classes=num_classes).clone(
        activation=act, conv_general_dilated=_conv_as_matmul if matmul_conv else None)
    return model.apply(layout.unflatten(flat), x, dropout_rate=hp['dropout'],
                       dropout_rng=dropout_rng)

  def subset_mask(key, fraction):
    order = jax.random.permutation(key, n_train)
    return jnp.zeros(n_train, bool).at[order].set(
        jnp.arange(n_train) < jnp.round(fraction * n_train))

  def dataset_metrics(flat, hp, x, y, weight, chunks):
    count, size = chunks
    pad = count * size - x.shape[0]
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape(count, size, *x.shape[1:])
    y = jnp.pad(y, (0, pad)).reshape(count, size)
    weight = jnp.pad(weight, (0, pad)).reshape(count, size)

    def chunk(totals, batch):
      xb, yb, wb = batch
      out = logits(flat, hp, xb)
      loss = optax.softmax_cross_entropy_with_integer_labels(out, yb)
      correct = (jnp.argmax(out, -1) == yb).astype(jnp.float32)
      return totals + jnp.stack([jnp.sum(wb * correct), jnp.sum(wb * loss), jnp.sum(wb)]), None

    totals, _ = jax.lax.scan(chunk, jnp.zeros(3), (x, y, weight))
    return totals[:2] / jnp.maximum(totals[2], 1.0)

  def step(flat, opt_state, hp, mask, key, x, y, batch):
    xb, yb, wb = x[batch], y[batch], mask[batch].astype(jnp.float32)

    def loss_fn(flat):
      ce = optax.softmax_cross_entropy_with_integer_labels(logits(flat, hp, xb, key), yb)
      data = jnp.sum(wb * ce) / jnp.maximum(jnp.sum(wb), 1.0)
      return data + hp['l2reg'] * jnp.sum(layout.kernel_mask * flat**2)  # Keras' l2(l2reg)

    loss, grads = jax.value_and_grad(loss_fn)(flat)
    # All three optimizers run and one update is kept per member: members differ in optimizer
    # but share one program, the updates are elementwise over a few thousand parameters (noise
    # next to the convolutions), and a lax.switch on a vmapped index would run every branch too.
    outs = [opt.update(grads, s, flat)
            for opt, s in zip(_optimizers(hp['learning_rate']), opt_state)]
    new = flat + jax.lax.select_n(hp['optimizer'], *[u for u, _ in outs])
    new_state = tuple(s for _, s in outs)
    finite = jnp.isfinite(loss) & jnp.all(jnp.isfinite(new))
    # A diverging step is skipped (and flagged) so that every snapshot holds finite weights.
    keep = lambda a, b: jnp.where(finite, a, b)
    return keep(new, flat), jax.tree.map(keep, new_state, opt_state), ~finite

  def program(hp, member_ids, x_train, y_train, x_test, y_test):
    keys = jax.vmap(lambda i: jax.random.split(jax.random.fold_in(
        jax.random.key(config.seed), i), 3))(member_ids)
    k_init, k_subset, k_epoch = keys[:, 0], keys[:, 1], keys[:, 2]
    flat = jax.vmap(layout.init)(k_init, hp['w_init'], hp['init_std'])
    masks = jax.vmap(subset_mask)(k_subset, hp['train_fraction'])
    opt_state = jax.vmap(lambda v: tuple(o.init(v) for o in _optimizers(0.0)))(flat)
    n_snap = len(config.snapshot_epochs)
    snapshots = jnp.zeros((n_snap, members, layout.size), jnp.float32)
    metrics = jnp.zeros((n_snap, members, len(METRICS)), jnp.float32)
    test_weight = jnp.ones(n_test, jnp.float32)

    def evaluate(flat, hp, mask):
      train = dataset_metrics(flat, hp, x_train, y_train, mask.astype(jnp.float32),
                              train_chunks)
      test = dataset_metrics(flat, hp, x_test, y_test, test_weight, test_chunks)
      return jnp.concatenate([train, test])

    def record(carry, epoch):
      flat, opt_state, diverged, snapshots, metrics = carry
      slot = jnp.asarray(slot_of_epoch)[epoch]
      snapshots = snapshots.at[slot].set(flat)
      metrics = metrics.at[slot].set(jax.vmap(evaluate)(flat, hp, masks))
      return flat, opt_state, diverged, snapshots, metrics

    def train_epoch(carry, epoch):
      # One key per step and one for the data order: few random calls, few kernels to compile.
      keys = jax.vmap(lambda k: jax.random.split(jax.random.fold_in(k, epoch), steps + 1))(
          k_epoch)
      order = jax.vmap(lambda k: jax.random.permutation(k, n_train))(keys[:, 0])
      order = order[:, :steps * config.batch_size].reshape(members, steps, config.batch_size)

      def one_step(inner, xs):
        flat, opt_state, diverged = inner
        batch, step_keys = xs
        flat, opt_state, bad = jax.vmap(step, in_axes=(0, 0, 0, 0, 0, None, None, 0))(
            flat, opt_state, hp, masks, step_keys, x_train, y_train, batch)
        return (flat, opt_state, diverged | bad), None

      inner, _ = jax.lax.scan(one_step, carry[:3],
                              (order.swapaxes(0, 1), keys[:, 1:].swapaxes(0, 1)))
      return (*inner, *carry[3:])

    def one_epoch(carry, epoch):
      # Evaluation and training each appear once in the program (under lax.cond).
      skip = lambda c, e: c
      carry = jax.lax.cond(jnp.asarray(slot_of_epoch)[epoch] >= 0, record, skip, carry, epoch)
      return jax.lax.cond(epoch < epochs, train_epoch, skip, carry, epoch), None

    carry = (flat, opt_state, jnp.zeros(members, bool), snapshots, metrics)
    carry, _ = jax.lax.scan(one_epoch, carry, jnp.arange(epochs + 1))
    _, _, diverged, snapshots, metrics = carry
    return snapshots, metrics, diverged

  return jax.jit(program), layout


def _codes(hparams: Mapping[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
  hp = {}
  for name in HPARAMS:
    values = np.asarray(hparams[name])[index]
    if name in CATEGORIES:
      hp[name] = np.asarray([CATEGORIES[name].index(v) for v in values], np.int32)
    else:
      hp[name] = values.astype(np.float32)
  return hp


def train_members(config: ZooConfig, width: int, member_ids: np.ndarray,
                  hparams: Mapping[str, np.ndarray], data: datasets_lib.ImageDataset,
                  size: int | None = None, mesh: Mesh | None = None) -> dict[str, Any]:
  """Trains the given members of one width together in one jitted program. Host-side wrapper.

  Args:
    config: the zoo config (architecture, epochs, batch size, seed).
    width: the members' channel width.
    member_ids: int [m], rows of `hparams`.
    hparams: as returned by `sample_hyperparameters`.
    data: the training and test data.
    size: train this many members (>= m; extra copies of the last member are dropped), so that
      shards of one width share one compilation.
    mesh: split the member axis over this mesh's `'data'` axis (None: the mesh set with
      `jax.set_mesh`, if any, else one device): `size` is rounded up to a multiple of its
      size, each device holds its own members' state and the data sets are replicated; XLA
      partitions the vmapped program. Each member's result is the one it gets on one device
      (tests/training/test_sharding.py, on two hosts). On several hosts every host gathers
      the whole result.

  Returns:
    `{'params': variables pytree, leaves [m, S, ...], 'metrics': {name: [m, S]},
    'diverged': bool [m]}` as numpy arrays.
  """
  member_ids = np.asarray(member_ids)
  m = len(member_ids)
  size = size or m
  mesh = mesh_lib.current_mesh(mesh)
  if mesh is not None:
    shards = mesh_lib.data_shards(mesh)
    size = -(-size // shards) * shards
  padded = np.concatenate([member_ids, np.repeat(member_ids[-1:], size - m)])
  program, layout = _shard_program(config, width, size, data.input_shape, data.num_classes,
                                   len(data.x_train), len(data.x_test))
  members = (_codes(hparams, padded), np.asarray(padded, np.int32))
  images = (data.x_train, data.y_train, data.x_test, data.y_test)
  if mesh is not None:  # members over 'data', images replicated; XLA partitions the vmap
    members = mesh_lib.place_batch(members, mesh)
    images = mesh_lib.replicate(images, mesh)
  snapshots, metrics, diverged = program(*members, *images)
  if jax.process_count() > 1:  # every host writes the whole shard
    snapshots, metrics, diverged = multihost_utils.process_allgather(
        (snapshots, metrics, diverged), tiled=True)
  snapshots = layout.unflatten(np.asarray(snapshots).swapaxes(0, 1)[:m])
  metrics = np.asarray(metrics).swapaxes(0, 1)[:m]
  return {'params': snapshots,
          'metrics': {name: metrics[..., i] for i, name in enumerate(METRICS)},
          'diverged': np.asarray(diverged)[:m]}

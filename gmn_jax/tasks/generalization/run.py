"""Predicting a network's test accuracy from its weights (Unterthiner et al. 2020; Lim et al.
2024, §5.1): zoo -> parameter graphs -> metanetworks and baselines -> report.

`train_and_evaluate(config, workdir)` generates (or reuses) a zoo of small CNNs, encodes every
snapshot with the tracer, splits by model (never by snapshot of one model), trains GMN,
NG-GNN, ScaleGMN, StatNN (an MLP and gradient-boosted trees) and a flat-weight MLP on the same
splits, and writes `results.json`, `results.md`, `predictions.csv` (every test row of every
method) and plots to `workdir`. Every stage is cached or checkpointed, so a killed run started
again resumes where it stopped (the trees take seconds and are refitted). The 'published'
protocol (`published_protocol`) keeps each run's final checkpoint, splits as NFN's loader does
and trains NG-GNN and NG-T with Kofinas et al.'s settings, for numbers comparable with the
papers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
from typing import Any

import flax.linen as nn
import numpy as np

from gmn_jax.tasks.generalization import baselines as baselines_lib
from gmn_jax.tasks.generalization import published_protocol as protocol_lib
from gmn_jax.tasks.generalization.config import GeneralizationConfig
from gmn_jax.tasks.generalization.data import (Data, encode_zoo, split_by_model, task_zoo,
                                               trained_targets)
from gmn_jax.tasks.generalization.methods import REGISTRY
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.training import report
from gmn_jax.training.fit import TrainConfig, fit, predict
from gmn_jax.zoos.cnn import zoo as zoo_lib


def build_model(name: str, config: GeneralizationConfig, data: Data, arch: int | None
                ) -> nn.Module:
  """Method `name` of `REGISTRY`, sized for `data`'s padding budget (`arch`: the template
  index of a method that reads one architecture, else None). Host-side."""
  budget = data.graphs.budget(config.train.batch_size)
  sizes = dict(max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  template = None if arch is None else data.graphs.templates[arch]
  return REGISTRY[name].build(config, sizes, template)


def train_config_for(name: str, config: GeneralizationConfig, n_train: int) -> TrainConfig:
  """The method's augmentation (`Method.augment`), and under the published protocol the
  papers' epochs and batch size for NG-GNN and NG-T; otherwise at least `config.min_steps`
  steps on `n_train` training rows."""
  train = REGISTRY[name].train_config(config.train)
  if config.protocol == 'published' and name in protocol_lib.PUBLISHED_TRAINING:
    published = protocol_lib.PUBLISHED_TRAINING[name]
    return dataclasses.replace(train, batch_size=published['batch_size'], epochs=max(
        1, int(round(published['epochs'] * config.epoch_scale))))
  per_epoch = max(1, math.ceil(n_train / train.batch_size))
  return dataclasses.replace(train, epochs=max(train.epochs,
                                               math.ceil(config.min_steps / per_epoch)))


def _split(config: GeneralizationConfig, zoo: zoo_lib.Zoo, workdir: pathlib.Path
           ) -> tuple[zoo_lib.Zoo, dict[str, np.ndarray] | None, dict[str, Any]]:
  """The zoo to encode, the published split as weights.npy rows (None under 'all_snapshots',
  which splits after encoding; else also saved as `workdir/split.json`), and what to record
  about the protocol."""
  if config.protocol != 'published':
    return zoo, None, {'protocol': config.protocol}
  split, zoo, about = protocol_lib.published_split(zoo, config.split_file, config.final_step,
                                                   config.seed)
  print(f'published protocol: final step {about["final_step"]}, split {about["split_file"]}: '
        + ', '.join(f'{len(split[k])} {k}' for k in protocol_lib.PARTS) + ' networks')
  (workdir / 'split.json').write_text(json.dumps({k: v.tolist() for k, v in split.items()}))
  return zoo, split, about


def train_and_evaluate(config: GeneralizationConfig, workdir: str | pathlib.Path,
                       progress: bool = True) -> dict[str, Any]:
  """Runs the whole experiment and writes the report into `workdir`. Host-side driver.

  Returns:
    The results (also saved as `workdir/results.json`): per method, test Kendall τ, R² and
    MSE on held-out models, the best validation epoch and the training time; `protocol`
    says which protocol produced them. Every test row's prediction goes to
    `workdir/predictions.csv` with its row of weights.npy and its metadata.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.time()
  zoo, published, protocol = _split(config, task_zoo(config, workdir), workdir)
  graphs, table, archs, dropped = encode_zoo(zoo, config.probes, config.max_abs_param)
  if published is None:
    train, val, test = split_by_model(config, table)
  else:
    (train, val, test), dropped = protocol_lib.positions(table['row'], published)
  data = Data(graphs, table, archs, train, val, test, dropped)
  data, back = trained_targets(config, data)  # graphs keeps the accuracies, for scoring
  results: dict[str, Any] = {
      'config': config.to_json(), 'protocol': protocol,
      'rows': {'train': len(train), 'val': len(val), 'test': len(test),
               'dropped_diverged': dropped},
      'architectures': [f'width {w}, {a}' for w, a in archs], 'methods': {},
      'labels': {name: REGISTRY[name].label for name in config.methods},
      'constant_predictor': metrics_lib.regression(
          graphs.targets[test], np.full(len(test), graphs.targets[train].mean())),
      'zoo_seconds': round(time.time() - start, 1)}
  histories, predictions, test_rows = {}, {}, {}
  for name in config.methods:
    rows = (train, val, test)
    note = (f'weights and each neuron\'s values on {config.probes} noise probes'
            if config.probes and REGISTRY[name].graph else '')
    arch = None
    if name == 'mlp':
      arch, note = baselines_lib.flat_mlp_architecture(data)
      if arch is None:
        results['methods'][name] = {'note': note}
        continue
      rows = tuple(r[graphs.template_of[r] == arch] for r in rows)
    tic = time.time()
    test_rows[name] = rows[2]
    if name == 'statnn_gbm':
      preds, rounds = baselines_lib.fit_statnn_gbm(config, data)
      preds = back(preds)
      predictions[name] = (graphs.targets[test], preds)
      results['methods'][name] = {
          'test': metrics_lib.regression(graphs.targets[test], preds), 'best_epoch': rounds,
          'n_test': len(test), 'train_seconds': round(time.time() - tic, 1),
          'note': f'gradient-boosted trees, {rounds} rounds (best validation τ)'}
      continue
    model = build_model(name, config, data, arch)
    train_config = train_config_for(name, config, len(rows[0]))
    if config.protocol == 'published' and name in protocol_lib.PUBLISHED_TRAINING:
      note = '; '.join(filter(None, [note, f'published settings: {train_config.epochs} '
                                     f'epochs, batch {train_config.batch_size}']))
    # The run directory does not record the targets: rank-trained runs get their own.
    run_name = name if config.targets == 'accuracy' else f'{name}-{config.targets}'
    fitted = fit(model, data.graphs, rows[0], rows[1], train_config, workdir / 'runs',
                 run_name, progress=progress)
    preds = back(predict(model, fitted.params, data.graphs, rows[2]))
    histories[name], predictions[name] = fitted.history, (graphs.targets[rows[2]], preds)
    results['methods'][name] = {
        'test': metrics_lib.regression(graphs.targets[rows[2]], preds),
        'best_epoch': fitted.best_epoch, 'epochs': train_config.epochs, 'n_test': len(rows[2]),
        'train_seconds': round(time.time() - tic, 1), 'note': note}
  results['total_seconds'] = round(time.time() - start, 1)
  report.write(workdir, results, histories, predictions)
  report.write_predictions(workdir / 'predictions.csv', table, {
      name: (test_rows[name], *predictions[name]) for name in predictions})
  return results

"""The diverse-architectures task's driver: `train_and_evaluate` (one setting) and
`run_settings` (several settings and seeds on one encoding of the zoo). Host-side."""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np

from gmn_jax.metanets.sequence_baselines import ParameterDeepSets, pooled_statistics
from gmn_jax.tasks.diverse_architectures import report as report_lib
from gmn_jax.tasks.diverse_architectures.config import SETTINGS, DiverseArchitecturesConfig
from gmn_jax.tasks.diverse_architectures.data import load_and_encode, split
from gmn_jax.tasks.diverse_architectures.methods import REGISTRY
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.training.encoding import Encoded
from gmn_jax.training.fit import TrainConfig, fit, init_params, predict
from gmn_jax.training.graph_set import GraphSet


def longest_network(graphs: GraphSet) -> int:
  """The most parameters any network of `graphs` has."""
  return max(sum(int(np.size(l)) for l in jax.tree.leaves(pg.decode(
      jax.tree.map(lambda a: a[0], s)))) for pg, s in zip(graphs.templates, graphs.stacked))


def build_model(name: str, config: DiverseArchitecturesConfig, graphs: GraphSet,
                train: np.ndarray | None = None) -> nn.Module:
  """Method `name` as `config.for_method(name)` builds it. Host-side.

  With `train` (the training rows) and `config.standardize_pooled`, parameter-DeepSets'
  pooled vector is standardised with its statistics over (up to 512 of) the training
  networks under the initial parameters `fit` will draw (`pooled_statistics`), as StatNN's
  features are; without `train` it reads its pooled vector raw.
  """
  config = config.for_method(name)
  budget = graphs.budget(config.train.batch_size)
  sizes = dict(max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  method = REGISTRY[name]
  model = method.build(config, sizes, None if method.graph else longest_network(graphs))
  if train is not None and config.standardize_pooled and isinstance(model, ParameterDeepSets):
    # The parameters `fit` starts from: its seed, its first batch's shapes.
    first = next(graphs.batches(train[:1], config.train.batch_size, budget))[0]
    params = init_params(model, jax.random.key(config.train.seed), first)
    mean, std = pooled_statistics(model, params, (
        (g, m) for g, _, m in graphs.batches(train[:512], config.train.batch_size, budget)))
    model = model.clone(pooled_mean=mean, pooled_std=std)
  return model


def train_config_for(name: str, config: DiverseArchitecturesConfig, n_train: int) -> TrainConfig:
  """The method's training (`config.for_method(name).train`) with its augmentation
  (`Method.augment`), its epochs raised to make `config.min_steps` steps on `n_train`
  networks."""
  train = config.for_method(name).train
  steps_per_epoch = -(-n_train // train.batch_size)
  train = dataclasses.replace(train, epochs=max(
      train.epochs, -(-config.min_steps // steps_per_epoch)))
  return REGISTRY[name].train_config(train)


def _scores(y: np.ndarray, p: np.ndarray, families: np.ndarray) -> dict[str, Any]:
  return {'test': metrics_lib.regression(y, p),
          'per_family': {f: metrics_lib.regression(y[families == f], p[families == f])
                         for f in sorted(set(families.tolist()))}}


def evaluate(config: DiverseArchitecturesConfig, data: Encoded, workdir: str | pathlib.Path,
             progress: bool = True) -> dict[str, Any]:
  """Trains and tests every method of `config` on one split of `data`; writes the report.
  Host-side driver.

  Returns:
    The results (also `workdir/results.json`): per method, R², Kendall τ and MSE on the test
    networks, overall and per family, parameter count, best epoch and training time.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  train, val, test = split(config, data.table)
  graphs, families = data.graphs, data.table['family']
  y = graphs.targets[test]
  const = np.full(len(test), graphs.targets[train].mean())
  results: dict[str, Any] = {
      'config': config.to_json(), 'architectures': data.architectures,
      'labels': {name: REGISTRY[name].label for name in config.methods},
      'rows': {'train': len(train), 'val': len(val), 'test': len(test),
               'dropped_diverged': data.dropped},
      'families': {f: {'train': int((families[train] == f).sum()),
                       'test': int((families[test] == f).sum())}
                   for f in sorted(set(families.tolist()))},
      'constant_predictor': metrics_lib.regression(y, const),
      'constant_per_family': _scores(y, const, families[test])['per_family'], 'methods': {}}
  histories, predictions = {}, {}
  for name in config.methods:
    tic = time.time()
    model = build_model(name, config, graphs, train)
    train_config = train_config_for(name, config, len(train))
    fitted = fit(model, graphs, train, val, train_config, workdir / 'runs', name,
                 progress=progress)
    preds = predict(model, fitted.params, graphs, test)
    histories[name], predictions[name] = fitted.history, preds
    note = (f'weights and per-neuron values on {config.probes} noise probes'
            if config.probes and REGISTRY[name].graph else '')
    results['methods'][name] = {
        **_scores(y, preds, families[test]), 'n_test': len(test),
        'parameters': int(sum(np.size(l) for l in jax.tree.leaves(fitted.params))),
        'best_epoch': fitted.best_epoch, 'train_seconds': round(time.time() - tic, 1),
        'learning_rate': train_config.learning_rate, 'epochs': train_config.epochs,
        'hidden': config.for_method(name).hidden, 'note': note}
  report_lib.write(workdir, results, histories, data.table, test, predictions)
  return results


def train_and_evaluate(config: DiverseArchitecturesConfig, workdir: str | pathlib.Path,
                       progress: bool = True) -> dict[str, Any]:
  """The whole experiment in one setting: zoo, graphs, every method, the report. Host-side."""
  start = time.time()
  data = load_and_encode(config, workdir, progress)
  zoo_seconds = time.time() - start
  results = evaluate(config, data, workdir, progress)
  results.update(zoo_seconds=round(zoo_seconds, 1), total_seconds=round(time.time() - start, 1))
  report_lib.write_json(pathlib.Path(workdir), results)
  return results


def run_settings(config: DiverseArchitecturesConfig, workdir: str | pathlib.Path,
                 settings: Sequence[str] = tuple(SETTINGS),
                 seeds: Mapping[str, int] | None = None, progress: bool = True
                 ) -> dict[str, Any]:
  """Every setting x seed on one encoding of the zoo, each in `workdir/<setting>-seed<k>`,
  and `workdir/summary.md` / `summary.json` (mean ± sd over seeds, GMN's margins). Host-side.

  Args:
    config: the run's config; `setting(name)` of it is trained for each setting.
    workdir: the zoo goes to `workdir/zoo`, each run to its own folder.
    settings: of SETTINGS.
    seeds: seeds per setting (default: one each); seed k sets both the split and the
      metanetworks' initialisation and data order.
    progress: show progress bars.
  """
  workdir = pathlib.Path(workdir)
  start = time.time()
  data = load_and_encode(config, workdir, progress)
  zoo_seconds = time.time() - start
  runs: dict[str, list[dict[str, Any]]] = {}
  for name in settings:
    for seed in range((seeds or {}).get(name, 1)):
      cfg = dataclasses.replace(config.setting(name), seed=seed,
                                train=dataclasses.replace(config.train, seed=seed))
      runs.setdefault(name, []).append(evaluate(cfg, data, workdir / f'{name}-seed{seed}',
                                                progress))
  summary = report_lib.summarize(runs)
  summary.update(zoo_seconds=round(zoo_seconds, 1), total_seconds=round(time.time() - start, 1),
                 networks=len(data.table['member']), architectures=data.architectures)
  report_lib.write_summary(workdir, summary)
  return summary

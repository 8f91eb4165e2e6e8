"""Predicting test accuracy across diverse architectures (Lim et al. 2024, Table 1): one
metanetwork reads MLPs, 2D CNNs (BatchNorm / GroupNorm / none), 1D CNNs, DeepSets, ResNets and
ViTs at once.

`train_and_evaluate(config, workdir)` generates (or reuses) a diverse zoo, traces each
architecture once and encodes its members in one vmapped call, splits by network, trains GMN,
NG-GNN, NG-T and the baselines DMC, parameter-DeepSets and StatNN on the same split (one padding
budget, sized for a typical mix rather than the worst, and one compiled step per method for
the batches of mixed architectures), and writes
`results.json` (R² and Kendall τ overall and per family), `results.md`, `predictions.csv`
(per network) and plots. Settings: all training data, `data_fraction` of it, or 'ood' (train on
the smaller hidden sizes, test on the largest). `run_settings` runs several settings and seeds
on one encoding of the zoo and writes `summary.md` (mean ± sd).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np

from gmn_jax.graphs import finite
from gmn_jax.graphs.tracing import trace
from gmn_jax.metanets.baselines import StatNN
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.metanets.sequence_baselines import DMC, ParameterDeepSets
from gmn_jax.tasks import diverse_report
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.training.fit import TrainConfig, fit, predict
from gmn_jax.training.graph_set import GraphSet
from gmn_jax.zoos import diverse_zoo as zoo_lib

METHODS = ('gmn', 'nggnn', 'ngt', 'dmc', 'deepsets', 'statnn')
DEFAULT_METHODS = ('gmn', 'dmc', 'deepsets')
SETTINGS = {'full': {}, 'fraction': {'data_fraction': 0.1}, 'ood': {'split': 'ood'}}
# Batches of mixed families are padded for 1.25x their mean size plus the largest graph, not
# for batch_size ViTs (`GraphSet.budget`): a 3x faster GMN step on the default zoo.
PACKING_SLACK = 1.25


@dataclasses.dataclass(frozen=True)
class DiverseArchitecturesConfig:
  """Everything one run depends on.

  Attributes:
    zoo: the zoo to generate (`DiverseZooConfig()`: diverse; `.varying_cnns()`: CNNs only).
    split: 'id' (networks of every size in train, validation and test) or 'ood' (train and
      validate on hidden sizes below `ood_test_hidden`, test on it).
    ood_test_hidden: the hidden sizes tested in 'ood' (default: the largest).
    data_fraction: share of the training networks kept (the paper's 10% setting: 0.1);
      validation and test are unchanged.
    test_fraction, val_fraction: shares of networks held out for test and for validation.
    methods: which of METHODS to train (default: GMN and the paper's baselines DMC and
      DeepSets; StatNN, NG-GNN and NG-T on request: the default run's 15 minutes hold five
      trainings of three methods on a 2-core CPU).
    probes: random-noise probe inputs whose per-neuron values GMN, NG-GNN and NG-T read
      (`gmn_jax.graphs.probe`); 0: weights only.
    hidden, layers: width and depth of GMN, NG-GNN and NG-T (baselines are sized from hidden).
    train: optimisation settings shared by every method (8 epochs at 3e-3: at 4 epochs and
      1e-3, GMN was far from converged and out of distribution, R² 0.137 against 0.451).
    min_steps: training runs at least this many steps (more epochs where the training set is
      small, e.g. the 10% setting); 0: exactly `train.epochs`.
    max_abs_param: networks with a parameter larger than this (or not finite) are dropped.
    seed: of the split (and, through `train.seed`, of training).
  """

  zoo: zoo_lib.DiverseZooConfig = dataclasses.field(default_factory=zoo_lib.DiverseZooConfig)
  split: str = 'id'
  ood_test_hidden: tuple[int, ...] | None = None
  data_fraction: float = 1.0
  test_fraction: float = 0.3
  val_fraction: float = 0.15
  methods: tuple[str, ...] = DEFAULT_METHODS
  probes: int = 8
  hidden: int = 32
  layers: int = 2
  train: TrainConfig = dataclasses.field(
      default_factory=lambda: TrainConfig(epochs=8, learning_rate=3e-3))
  min_steps: int = 8
  max_abs_param: float = 1e3
  seed: int = 0

  def __post_init__(self):
    unknown = set(self.methods) - set(METHODS)
    if unknown:
      raise ValueError(f'unknown methods {sorted(unknown)}; choose from {METHODS}')
    if self.split not in ('id', 'ood'):
      raise ValueError(f"split must be 'id' or 'ood', not {self.split!r}")
    if not 0 < self.data_fraction <= 1:
      raise ValueError(f'data_fraction must be in (0, 1]: {self.data_fraction}')

  @classmethod
  def tiny(cls) -> 'DiverseArchitecturesConfig':
    """The test suite's config: three families, GMN alone (the baselines have their own
    tests), seconds of training, yet a real signal."""
    return cls(zoo=zoo_lib.DiverseZooConfig.tiny(), methods=('gmn',),
               hidden=16, layers=2, probes=4, test_fraction=0.4, val_fraction=0.25, min_steps=0,
               train=TrainConfig(epochs=8, batch_size=16))

  def setting(self, name: str) -> 'DiverseArchitecturesConfig':
    """This config in one of SETTINGS ('full', 'fraction': 10% of the data, 'ood')."""
    if name not in SETTINGS:
      raise ValueError(f'unknown setting {name!r}; choose from {sorted(SETTINGS)}')
    return dataclasses.replace(self, **SETTINGS[name])

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out['zoo'] = self.zoo.to_json()
    return out


@dataclasses.dataclass
class Encoded:
  """The zoo as graphs: a GraphSet and a row-aligned table (family, hidden, accuracy, ...)."""

  graphs: GraphSet
  table: dict[str, np.ndarray]
  architectures: list[str]
  dropped: int


def encode_zoo(zoo: zoo_lib.DiverseZoo, probes: int = 0, max_abs_param: float = np.inf
               ) -> Encoded:
  """Traces each (architecture, activation) once and encodes its members in one vmapped call.
  Networks whose parameters are not finite or exceed `max_abs_param` are dropped and counted
  (`dropped`); an encoding that is still not finite (probe outputs that overflow) raises
  ValueError naming its rows (`gmn_jax.graphs.finite`). Host-side."""
  inputs = (np.random.default_rng(0).standard_normal(
      (probes, *zoo.example_input().shape)).astype(np.float32) if probes else None)
  templates, stacked, tables, names, dropped = [], [], [], [], 0
  for group in zoo.groups:
    for act in sorted(set(group.table['activation'].tolist())):
      rows = np.flatnonzero(group.table['activation'] == act)
      variables = jax.tree.map(lambda a: a[rows], group.variables)
      largest = np.max([np.abs(l).reshape(len(l), -1).max(1)
                        for l in jax.tree.leaves(variables)], axis=0)
      kept = (largest <= max_abs_param) & finite.finite_rows(variables)
      dropped += int((~kept).sum())
      if not kept.any():
        continue
      rows, variables = rows[kept], jax.tree.map(lambda a: a[kept], variables)
      pg = trace(zoo.model(group.spec, act), jax.tree.map(lambda a: a[0], variables),
                 zoo.example_input())
      templates.append(pg)
      stacked.append(jax.jit(jax.vmap(lambda v, pg=pg: pg.encode(v, inputs)))(variables))
      finite.check_encoded(stacked[-1], f'zoo {group.spec.name} {act} (rows kept)')
      tables.append({k: v[rows] for k, v in group.table.items()})
      names.append(f'{group.spec.name} {act}')
  table = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
  template_of = np.concatenate([np.full(len(t['member']), i) for i, t in enumerate(tables)])
  row_of = np.concatenate([np.arange(len(t['member'])) for t in tables])
  graphs = GraphSet(templates, stacked, template_of, row_of, table['test_accuracy'],
                    packing_slack=PACKING_SLACK)
  return Encoded(graphs, table, names, dropped)


def split(config: DiverseArchitecturesConfig, table: dict[str, np.ndarray]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(train, val, test) row indices (one row per network). Host-side."""
  rng = np.random.default_rng(config.seed)
  rows = np.arange(len(table['member']))
  if config.split == 'ood':
    test_hidden = config.ood_test_hidden or (int(table['hidden'].max()),)
    is_test = np.isin(table['hidden'], test_hidden)
    if is_test.all() or not is_test.any():
      raise ValueError(f"the 'ood' split needs networks of other hidden sizes than "
                       f'{test_hidden}; the zoo has {sorted(set(table["hidden"].tolist()))}')
    test, pool = rows[is_test], rng.permutation(rows[~is_test])
  else:
    rows = rng.permutation(rows)
    n_test = int(round(config.test_fraction * len(rows)))
    test, pool = np.sort(rows[:n_test]), rows[n_test:]
  n_val = max(1, int(round(config.val_fraction * len(pool))))
  val, train = pool[:n_val], pool[n_val:]
  train = train[:max(1, int(round(config.data_fraction * len(train))))]
  return np.sort(train), np.sort(val), test


def _model(name: str, config: DiverseArchitecturesConfig, graphs: GraphSet) -> nn.Module:
  budget = graphs.budget(config.train.batch_size)
  sizes = dict(max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  h = config.hidden
  if name == 'gmn':
    return GMN(node_dim=h, edge_dim=h, num_layers=config.layers, readout_hidden=h, **sizes)
  if name == 'nggnn':
    return NGGNN(hidden_dim=h, num_layers=config.layers, readout_hidden=h, **sizes)
  if name == 'ngt':
    return NGT(node_dim=h, edge_dim=h // 2, num_layers=config.layers, num_heads=4,
               readout_hidden=h, **sizes)
  longest = max(sum(int(np.size(l)) for l in jax.tree.leaves(pg.decode(
      jax.tree.map(lambda a: a[0], s)))) for pg, s in zip(graphs.templates, graphs.stacked))
  if name == 'dmc':
    return DMC(max_length=longest, channels=(8, 16, 2 * h, 2 * h), hidden=(2 * h,))
  if name == 'deepsets':
    return ParameterDeepSets(max_length=longest, hidden=2 * h)
  return StatNN(hidden=(4 * h, 4 * h))


def _train_config(name: str, config: DiverseArchitecturesConfig, n_train: int) -> TrainConfig:
  """`config.train`, with epochs raised to make `config.min_steps` steps on `n_train`
  networks. Baselines train with permutation augmentation only, as in `tasks.generalization`
  (their features cannot learn to ignore a neuron's scale)."""
  steps_per_epoch = -(-n_train // config.train.batch_size)
  train = dataclasses.replace(config.train, epochs=max(
      config.train.epochs, -(-config.min_steps // steps_per_epoch)))
  return dataclasses.replace(train, max_scale=1.0) if name in ('dmc', 'deepsets', 'statnn') \
      else train


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
    model = _model(name, config, graphs)
    fitted = fit(model, graphs, train, val, _train_config(name, config, len(train)),
                 workdir / 'runs', name, progress=progress)
    preds = predict(model, fitted.params, graphs, test)
    histories[name], predictions[name] = fitted.history, preds
    note = (f'weights and per-neuron values on {config.probes} noise probes'
            if config.probes and name in ('gmn', 'nggnn', 'ngt') else '')
    results['methods'][name] = {
        **_scores(y, preds, families[test]), 'n_test': len(test),
        'parameters': int(sum(np.size(l) for l in jax.tree.leaves(fitted.params))),
        'best_epoch': fitted.best_epoch, 'train_seconds': round(time.time() - tic, 1),
        'note': note}
  diverse_report.write(workdir, results, histories, data.table, test, predictions)
  return results


def load_and_encode(config: DiverseArchitecturesConfig, workdir: str | pathlib.Path,
                    progress: bool = True) -> Encoded:
  """Generates (or reuses) the zoo in `workdir/zoo` and encodes it. Host-side."""
  zoo = zoo_lib.generate_diverse_zoo(config.zoo, pathlib.Path(workdir) / 'zoo',
                                     progress=progress)
  return encode_zoo(zoo, config.probes, config.max_abs_param)


def train_and_evaluate(config: DiverseArchitecturesConfig, workdir: str | pathlib.Path,
                       progress: bool = True) -> dict[str, Any]:
  """The whole experiment in one setting: zoo, graphs, every method, the report. Host-side."""
  start = time.time()
  data = load_and_encode(config, workdir, progress)
  zoo_seconds = time.time() - start
  results = evaluate(config, data, workdir, progress)
  results.update(zoo_seconds=round(zoo_seconds, 1), total_seconds=round(time.time() - start, 1))
  diverse_report.write_json(pathlib.Path(workdir), results)
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
  summary = diverse_report.summarize(runs)
  summary.update(zoo_seconds=round(zoo_seconds, 1), total_seconds=round(time.time() - start, 1),
                 networks=len(data.table['member']), architectures=data.architectures)
  diverse_report.write_summary(workdir, summary)
  return summary

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
import pathlib
import time
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from gmn_jax.tasks import generalization_baselines as baselines_lib
from gmn_jax.tasks import published_protocol as protocol_lib
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.zoos import zoo as zoo_lib
from gmn_jax.metanets.baselines import StatNN, WeightMLP
from gmn_jax.metanets.gmn import GMN
from gmn_jax.training.graph_set import GraphSet
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.metanets.scalegmn import ScaleGMN, with_scaling_kinds
from gmn_jax.graphs import finite
from gmn_jax.graphs.tracing import trace
from gmn_jax.training.fit import TrainConfig, fit, predict

METHODS = ('gmn', 'nggnn', 'scalegmn', 'statnn', 'statnn_gbm', 'mlp', 'ngt')
DEFAULT_METHODS = ('gmn', 'nggnn', 'statnn', 'statnn_gbm', 'mlp')  # scalegmn: see README
GRAPH_METANETWORKS = ('gmn', 'nggnn', 'scalegmn', 'ngt')
PROTOCOLS = ('all_snapshots', 'published')


@dataclasses.dataclass(frozen=True)
class GeneralizationConfig:
  """Everything one accuracy-prediction run depends on.

  Attributes:
    zoo: how to generate the zoo (ignored when `zoo_dir` is set).
    zoo_dir: a directory in the public Small CNN Zoo format to read instead of generating.
    zoo_arch: for `zoo_dir`, what the format does not record: `padding`, `strides`,
      `input_shape`, `activation_column` (keyword arguments of `read_small_cnn_zoo`; they
      override an `arch.json` beside layout.csv and the `config.*` columns).
    protocol: 'all_snapshots' (train and test on every snapshot, split by model: our
      default) or 'published' (each run's final checkpoint only, NFN's split from
      `split_file`, NG-GNN and NG-T with Kofinas et al.'s settings; see
      `published_protocol`).
    split_file: for 'published': NFN's index CSV (e.g. `cifar10_split.csv`) or a JSON of row
      lists `{"train": [...], "val": [...], "test": [...]}`; None: a seeded permutation.
    final_step: for 'published': the `step` kept, NFN's filter (86 for the published zoos);
      None: each run's last checkpoint.
    epoch_scale: for 'published': NG-GNN's and NG-T's published 300 epochs are multiplied by
      this (e.g. 0.05 on a CPU); the other methods keep `train.epochs`.
    split: 'id' (train, validate and test on the same widths) or 'ood' (train and validate
      on the narrower widths, test on `ood_test_widths`).
    ood_test_widths: the widths held out for testing in the 'ood' split (default: widest).
    test_fraction: share of models (not snapshots) held out for testing in the 'id' split.
    val_fraction: share of the remaining models used for validation.
    methods: which of 'gmn', 'nggnn', 'scalegmn' (also equivariant to the ReLU rescalings and
      tanh sign flips of each member), 'statnn' (StatNN's statistics into an MLP),
      'statnn_gbm' (the same statistics into scikit-learn's gradient boosting, the paper's
      strongest StatNN), 'mlp' and 'ngt' (NG-T, not in the default run) to train.
    probes: K, how many random-noise probe inputs each network is run on; the graph
      metanetworks read every neuron's value on them as node features
      (`gmn_jax.graphs.probe`). No data set examples are used. StatNN and the flat MLP read
      weights only. 0: off.
    hidden: width of the graph metanetworks.
    layers: message-passing layers of the graph metanetworks.
    train: optimisation settings shared by every method.
    max_abs_param: rows holding a parameter larger than this in magnitude are dropped as
      diverged, as are rows that are not finite. ReLU members trained with large steps can
      blow up to |w| ~ 1e36 and stay finite; float32 features of every method overflow on
      them. Measured on zoos of 6,400 and 12,800 members: 99.9% of rows stay below |w| 7.5,
      none falls between 100 and 1e4, and 15 of 32,000 rows exceed 1e4.
    seed: of the splits.
  """

  zoo: zoo_lib.ZooConfig = dataclasses.field(default_factory=zoo_lib.default_config)
  zoo_dir: str | None = None
  zoo_arch: dict[str, Any] = dataclasses.field(default_factory=dict)
  protocol: str = 'all_snapshots'
  split_file: str | None = None
  final_step: int | None = None
  epoch_scale: float = 1.0
  split: str = 'id'
  ood_test_widths: tuple[int, ...] | None = None
  test_fraction: float = 0.5
  val_fraction: float = 0.2
  methods: tuple[str, ...] = DEFAULT_METHODS
  probes: int = 16
  hidden: int = 32
  layers: int = 3
  train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(epochs=12))
  max_abs_param: float = 1e3
  seed: int = 0

  def __post_init__(self):
    unknown = set(self.methods) - set(METHODS)
    if unknown:
      raise ValueError(f'unknown methods {sorted(unknown)}; choose from {METHODS}')
    if self.split not in ('id', 'ood'):
      raise ValueError(f"split must be 'id' or 'ood', not {self.split!r}")
    if self.protocol not in PROTOCOLS:
      raise ValueError(f'protocol must be one of {PROTOCOLS}, not {self.protocol!r}')
    if self.protocol == 'published' and self.split == 'ood':
      raise ValueError("the published protocol has its own split; drop split='ood'")
    if self.protocol != 'published' and (self.split_file or self.final_step is not None):
      raise ValueError("split_file and final_step belong to protocol='published'")
    from gmn_jax.zoos.small_cnn_zoo_architecture import FLAGS  # pylint: disable=g-import-not-at-top
    unknown = set(self.zoo_arch) - set(FLAGS)
    if unknown or (self.zoo_arch and self.zoo_dir is None):
      raise ValueError(f'zoo_arch takes {sorted(FLAGS)} and needs zoo_dir; got {self.zoo_arch}')

  @classmethod
  def default(cls) -> 'GeneralizationConfig':
    """The README's main job: the digits zoo, every method, about 7-10 minutes on 2 CPU cores."""
    return cls()

  @classmethod
  def quick(cls) -> 'GeneralizationConfig':
    """A smoke run of a minute or two."""
    zoo = dataclasses.replace(zoo_lib.default_config(), num_members=120)
    return cls(zoo=zoo, train=TrainConfig(epochs=4), hidden=16, layers=2)

  @classmethod
  def tiny(cls) -> 'GeneralizationConfig':
    """The test suite's config: seconds, yet a real signal."""
    zoo = dataclasses.replace(zoo_lib.default_config(), widths=(4,), num_members=48,
                              shard_size=48, snapshot_epochs=(0, 1, 3, 6), max_train=512,
                              max_test=256)
    return cls(zoo=zoo, train=TrainConfig(epochs=8, batch_size=16), hidden=16, layers=2,
               methods=('gmn', 'statnn', 'statnn_gbm'))

  def to_json(self) -> dict[str, Any]:
    out = dataclasses.asdict(self)
    out['zoo'] = self.zoo.to_json()
    return out


@dataclasses.dataclass
class Data:
  """The encoded zoo and its model-level splits."""

  graphs: GraphSet
  table: dict[str, np.ndarray]  # row-aligned with the graphs
  architectures: list[tuple[int, str]]  # (width, activation) per template
  train: np.ndarray
  val: np.ndarray
  test: np.ndarray
  dropped: int  # rows whose parameters are not finite or exceed max_abs_param (diverged)


def load_zoo(config: GeneralizationConfig, workdir: pathlib.Path) -> zoo_lib.Zoo:
  """The zoo: read from `zoo_dir` (printing the architecture it infers), or generated into
  `workdir/zoo` (reused when cached). Every row has a `row` id: the row of weights.npy, or
  for a generated zoo its position in width order (as `write_small_cnn_zoo` numbers them)."""
  if config.zoo_dir is not None:
    from gmn_jax.zoos import small_cnn_zoo  # pylint: disable=g-import-not-at-top
    return small_cnn_zoo.read_small_cnn_zoo(config.zoo_dir, log=print, **config.zoo_arch)
  directory = workdir / 'zoo'
  zoo_lib.generate_zoo(config.zoo, directory)
  zoo = zoo_lib.load_zoo(directory)
  offset = 0
  for width in zoo.widths:
    n = len(zoo.metrics[width]['member'])
    zoo.metrics[width]['row'] = np.arange(offset, offset + n)
    offset += n
  return zoo


def probe_inputs(zoo: zoo_lib.Zoo, k: int, seed: int = 0) -> np.ndarray | None:
  """`[k, *example input shape]` standard normal noise images (None when k is 0)."""
  if not k:
    return None
  shape = (k,) + zoo.example_input().shape
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def encode_zoo(zoo: zoo_lib.Zoo, probes: int = 0, max_abs_param: float = np.inf
               ) -> tuple[GraphSet, dict[str, np.ndarray], list, int]:
  """Traces each architecture (width x activation) once and encodes its rows in one vmapped
  call, with `probes` random-noise probe inputs (`probe_inputs`). Rows whose parameters are
  not finite or exceed `max_abs_param` in magnitude are dropped (diverged) and counted; an
  encoding that is still not finite (probe outputs that overflow) raises ValueError naming its
  rows (`gmn_jax.graphs.finite`)."""
  inputs = probe_inputs(zoo, probes)
  templates, stacked, tables, archs, dropped = [], [], [], [], 0
  for width in zoo.widths:
    for act in sorted(set(zoo.metrics[width]['activation'].tolist())):
      params, table = zoo.select(width, act)
      largest = np.max([np.abs(l).reshape(len(l), -1).max(1) for l in jax.tree.leaves(params)],
                       axis=0)  # NaN where a row has NaN
      kept = (largest <= max_abs_param) & finite.finite_rows(params)
      dropped += int((~kept).sum())
      rows = np.flatnonzero(kept)
      if rows.size == 0:
        continue
      params = jax.tree.map(lambda a: a[rows], params)
      example = jax.tree.map(lambda a: a[0], params)
      pg = trace(zoo.model(width, act), example, zoo.example_input())
      templates.append(pg)
      stacked.append(with_scaling_kinds(  # ScaleGMN reads each neuron's factor kind
          jax.jit(jax.vmap(lambda v, pg=pg: pg.encode(v, inputs)))(params), pg))
      finite.check_encoded(stacked[-1], f'zoo width {width} {act} (rows kept)')
      tables.append({k: v[rows] for k, v in table.items()})
      archs.append((int(width), str(act)))
  table = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
  template_of = np.concatenate([np.full(len(t['member']), i) for i, t in enumerate(tables)])
  row_of = np.concatenate([np.arange(len(t['member'])) for t in tables])
  graphs = GraphSet(templates, stacked, template_of, row_of, table['test_accuracy'])
  return graphs, table, archs, dropped


def split_by_model(config: GeneralizationConfig, table: dict[str, np.ndarray]):
  """(train, val, test) row indices; all snapshots of one model fall in the same part."""
  rng = np.random.default_rng(config.seed)
  members = np.unique(table['member'])
  widths = table['width']
  if config.split == 'ood':
    test_widths = config.ood_test_widths or (int(widths.max()),)
    test_rows = np.isin(widths, test_widths)
    pool = np.unique(table['member'][~test_rows])
    test_members = np.unique(table['member'][test_rows])
  else:
    members = rng.permutation(members)
    n_test = int(round(config.test_fraction * len(members)))
    test_members, pool = members[:n_test], members[n_test:]
  pool = rng.permutation(pool)
  n_val = max(1, int(round(config.val_fraction * len(pool))))
  val_members, train_members = pool[:n_val], pool[n_val:]
  part = lambda ms: np.flatnonzero(np.isin(table['member'], ms))
  return part(train_members), part(val_members), part(test_members)


def _model(name: str, config: GeneralizationConfig, data: Data, arch: int | None) -> nn.Module:
  budget = data.graphs.budget(config.train.batch_size)
  sizes = dict(max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  if name == 'gmn':
    return GMN(node_dim=config.hidden, edge_dim=config.hidden, num_layers=config.layers,
               readout_hidden=config.hidden, **sizes)
  published = config.protocol == 'published'
  if name == 'nggnn':
    if published:
      return NGGNN.preset('small_cnn_zoo', **sizes)
    return NGGNN(hidden_dim=config.hidden, num_layers=config.layers,
                 readout_hidden=config.hidden, **sizes)
  if name == 'ngt':
    if published:
      return NGT.preset('small_cnn_zoo', readout_hidden=256, **sizes)
    return NGT(node_dim=config.hidden, edge_dim=config.hidden, num_layers=config.layers,
               readout_hidden=config.hidden, **sizes)
  if name == 'scalegmn':
    return ScaleGMN(hidden_dim=config.hidden, num_layers=config.layers,
                    readout_hidden=config.hidden, **sizes)
  if name == 'statnn':
    return StatNN(hidden=(4 * config.hidden, 4 * config.hidden))
  pg = data.graphs.templates[arch]
  return WeightMLP(n_node=pg.n_node, n_edge=pg.n_edge, hidden=(4 * config.hidden,) * 2)


def _train_config(name: str, config: GeneralizationConfig) -> TrainConfig:
  """The baselines train with permutation augmentation only. Scaling augmentation helps the
  metanetworks but hurt both baselines on the default zoo (held-out τ: StatNN 0.665 -> 0.629,
  flat MLP 0.511 -> 0.241): their features (weight statistics, raw weights) cannot learn to
  ignore a neuron's scale, so it only hides information from them."""
  if name in ('statnn', 'mlp'):
    return dataclasses.replace(config.train, max_scale=1.0)
  if config.protocol == 'published' and name in protocol_lib.PUBLISHED_TRAINING:
    published = protocol_lib.PUBLISHED_TRAINING[name]
    return dataclasses.replace(config.train, batch_size=published['batch_size'], epochs=max(
        1, int(round(published['epochs'] * config.epoch_scale))))
  return config.train


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
  zoo, published, protocol = _split(config, load_zoo(config, workdir), workdir)
  graphs, table, archs, dropped = encode_zoo(zoo, config.probes, config.max_abs_param)
  if published is None:
    train, val, test = split_by_model(config, table)
  else:
    (train, val, test), dropped = protocol_lib.positions(table['row'], published)
  data = Data(graphs, table, archs, train, val, test, dropped)
  results: dict[str, Any] = {
      'config': config.to_json(), 'protocol': protocol,
      'rows': {'train': len(train), 'val': len(val), 'test': len(test),
               'dropped_diverged': dropped},
      'architectures': [f'width {w}, {a}' for w, a in archs], 'methods': {},
      'constant_predictor': metrics_lib.regression(
          graphs.targets[test], np.full(len(test), graphs.targets[train].mean())),
      'zoo_seconds': round(time.time() - start, 1)}
  histories, predictions, test_rows = {}, {}, {}
  for name in config.methods:
    rows = (train, val, test)
    note = (f'weights and each neuron\'s values on {config.probes} noise probes'
            if config.probes and name in GRAPH_METANETWORKS else '')
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
      predictions[name] = (graphs.targets[test], preds)
      results['methods'][name] = {
          'test': metrics_lib.regression(graphs.targets[test], preds), 'best_epoch': rounds,
          'n_test': len(test), 'train_seconds': round(time.time() - tic, 1),
          'note': f'gradient-boosted trees, {rounds} rounds (best validation τ)'}
      continue
    model, train_config = _model(name, config, data, arch), _train_config(name, config)
    if config.protocol == 'published' and name in protocol_lib.PUBLISHED_TRAINING:
      note = '; '.join(filter(None, [note, f'published settings: {train_config.epochs} '
                                     f'epochs, batch {train_config.batch_size}']))
    fitted = fit(model, graphs, rows[0], rows[1], train_config, workdir / 'runs', name,
                 progress=progress)
    preds = predict(model, fitted.params, graphs, rows[2])
    histories[name], predictions[name] = fitted.history, (graphs.targets[rows[2]], preds)
    results['methods'][name] = {
        'test': metrics_lib.regression(graphs.targets[rows[2]], preds),
        'best_epoch': fitted.best_epoch, 'n_test': len(rows[2]),
        'train_seconds': round(time.time() - tic, 1), 'note': note}
  results['total_seconds'] = round(time.time() - start, 1)
  from gmn_jax.training import report  # pylint: disable=g-import-not-at-top
  report.write(workdir, results, histories, predictions)
  report.write_predictions(workdir / 'predictions.csv', table, {
      name: (test_rows[name], *predictions[name]) for name in predictions})
  return results

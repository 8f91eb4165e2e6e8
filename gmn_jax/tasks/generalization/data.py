"""The accuracy-prediction task's data: its zoo (generated or read), the zoo as graphs, and
the splits by model. Host-side."""

from __future__ import annotations

import copy
import dataclasses
import pathlib
from collections.abc import Callable

import numpy as np

from gmn_jax.tasks.generalization.config import GeneralizationConfig
from gmn_jax.training.encoding import Architecture, encode_architectures
from gmn_jax.training.graph_set import GraphSet
from gmn_jax.zoos.cnn import zoo as zoo_lib
from gmn_jax.zoos.cnn.small_cnn_zoo import read_small_cnn_zoo


@dataclasses.dataclass
class Data:
  """The encoded zoo and its model-level splits.

  Attributes:
    graphs: every kept row as a graph; targets are test accuracies.
    table: the zoo's metrics, row-aligned with `graphs`.
    architectures: `(width, activation)` per template of `graphs`.
    train, val, test: row indices.
    dropped: rows whose parameters are not finite or exceed `max_abs_param` (diverged).
  """

  graphs: GraphSet
  table: dict[str, np.ndarray]
  architectures: list[tuple[int, str]]
  train: np.ndarray
  val: np.ndarray
  test: np.ndarray
  dropped: int


def task_zoo(config: GeneralizationConfig, workdir: pathlib.Path) -> zoo_lib.Zoo:
  """The zoo this run reads: `config.zoo_dir` (printing the architecture it infers), or
  generated into `workdir/zoo` (reused when cached; `gmn_jax.zoos.load_zoo` reads it back).
  Every row has a `row` id: the row of weights.npy, or for a generated zoo its position in
  width order (as `write_small_cnn_zoo` numbers them)."""
  if config.zoo_dir is not None:
    return read_small_cnn_zoo(config.zoo_dir, log=print, **config.zoo_arch)
  directory = workdir / 'zoo'
  zoo_lib.generate_zoo(config.zoo, directory)
  zoo = zoo_lib.load_zoo(directory)
  offset = 0
  for width in zoo.widths:
    n = len(zoo.metrics[width]['member'])
    zoo.metrics[width]['row'] = np.arange(offset, offset + n)
    offset += n
  return zoo


def encode_zoo(zoo: zoo_lib.Zoo, probes: int = 0, max_abs_param: float = np.inf
               ) -> tuple[GraphSet, dict[str, np.ndarray], list, int]:
  """(graphs, table, architectures, dropped): each architecture (width x activation) traced
  once, its rows encoded in one vmapped call with `probes` random-noise probe inputs
  (`training.encoding`), with each neuron's scaling kind (ScaleGMN reads it). Rows whose
  parameters are not finite or exceed `max_abs_param` in magnitude are dropped."""

  def architectures():
    for width in zoo.widths:
      for act in sorted(set(zoo.metrics[width]['activation'].tolist())):
        params, table = zoo.select(width, act)
        yield Architecture((int(width), str(act)), zoo.model(width, act), params, table)

  encoded = encode_architectures(architectures(), zoo.example_input(), 'test_accuracy',
                                 probes, max_abs_param, scaling_kinds=True)
  return encoded.graphs, encoded.table, encoded.architectures, encoded.dropped


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


@dataclasses.dataclass(frozen=True)
class RankTargets:
  """A strictly increasing map of accuracies onto (0, 1): each distinct training accuracy
  goes to its mid-rank share of the training set (its empirical CDF), other values by
  linear interpolation between them (clamped outside the training range). Kendall τ is
  unchanged by it; a squared loss on its values weighs every pair of training networks by
  how many others sit between them, not by their accuracy gap, so the dense bulk of good
  networks counts as much as the few that failed. Host-side.

  Attributes:
    values: the distinct training accuracies, increasing.
    shares: their mid-rank shares of the training set, increasing, in (0, 1).
  """

  values: np.ndarray
  shares: np.ndarray

  @classmethod
  def fit(cls, train_targets: np.ndarray) -> 'RankTargets':
    """The map of these training accuracies."""
    values, counts = np.unique(np.asarray(train_targets, np.float64), return_counts=True)
    below = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return cls(values, (below + counts / 2) / counts.sum())

  def __call__(self, accuracies: np.ndarray) -> np.ndarray:
    return np.interp(accuracies, self.values, self.shares).astype(np.float32)

  def inverse(self, shares: np.ndarray) -> np.ndarray:
    """Predicted shares back to accuracies (strictly increasing inside the training range)."""
    return np.interp(shares, self.shares, self.values)


def trained_targets(config: GeneralizationConfig, data: Data
                    ) -> tuple[Data, Callable[[np.ndarray], np.ndarray]]:
  """(data on the scale the methods train on, the map of their predictions back to
  accuracies): `data` and the identity for `config.targets == 'accuracy'`; for 'rank', a
  copy whose graphs' targets are `RankTargets` of the training rows (`data.graphs` itself is
  not changed) and the inverse map."""
  if config.targets == 'accuracy':
    return data, lambda preds: preds
  ranks = RankTargets.fit(data.graphs.targets[data.train])
  graphs = copy.copy(data.graphs)
  graphs.targets = ranks(data.graphs.targets)
  return dataclasses.replace(data, graphs=graphs), ranks.inverse

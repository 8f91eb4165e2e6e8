"""The diverse-architectures task's data: the zoo as graphs and its split by network.
Host-side."""

from __future__ import annotations

import pathlib

import jax
import numpy as np

from gmn_jax.tasks.diverse_architectures.config import DiverseArchitecturesConfig
from gmn_jax.training.encoding import Architecture, Encoded, encode_architectures
from gmn_jax.zoos.diverse import zoo as zoo_lib

# Batches of mixed families are padded for 1.25x their mean size plus the largest graph, not
# for batch_size of the largest graphs (`GraphSet.budget`).
PACKING_SLACK = 1.25


def encode_zoo(zoo: zoo_lib.DiverseZoo, probes: int = 0, max_abs_param: float = np.inf
               ) -> Encoded:
  """Traces each (architecture, activation) once and encodes its members in one vmapped call
  (`training.encoding`). Networks whose parameters are not finite or exceed `max_abs_param`
  are dropped. Host-side."""

  def architectures():
    for group in zoo.groups:
      for act in sorted(set(group.table['activation'].tolist())):
        rows = np.flatnonzero(group.table['activation'] == act)
        yield Architecture(f'{group.spec.name} {act}', zoo.model(group.spec, act),
                           jax.tree.map(lambda a: a[rows], group.variables),
                           {k: v[rows] for k, v in group.table.items()})

  return encode_architectures(architectures(), zoo.example_input(), 'test_accuracy', probes,
                              max_abs_param, packing_slack=PACKING_SLACK)


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


def load_and_encode(config: DiverseArchitecturesConfig, workdir: str | pathlib.Path,
                    progress: bool = True) -> Encoded:
  """Generates (or reuses) the zoo in `workdir/zoo` and encodes it. Host-side."""
  zoo = zoo_lib.generate_diverse_zoo(config.zoo, pathlib.Path(workdir) / 'zoo',
                                     progress=progress)
  return encode_zoo(zoo, config.probes, config.max_abs_param)

"""The published accuracy-prediction protocol on Small CNN Zoo files (Zhou et al.'s NFN loader,
followed by NFT, NG-GNN and NG-T): the rows, the split and the metanetworks' settings. Host-side.

NFN's loader (`experiments/data_utils.py` of the NFN repository) reads `weights.npy` and
`metrics.csv.gz`, permutes their rows by an index file (one row number a line, no header:
`predict_gen_data_splits/cifar10_split.csv`), keeps the rows whose `step` is 86 (each run's
final checkpoint), and splits the kept rows by position: the second half (from `int(0.5 * n)`)
is the test set; the first half is shuffled by Python's `random.Random(0)` and its first
`int(0.8 * len)` positions train, the rest validate. On CIFAR10-GS and SVHN-GS that is 12,000 /
3,000 / 15,000 networks. Kendall τ is reported on test at the epoch of best validation τ
(what `gmn_jax.fit` keeps). `published_split` reproduces it exactly; a JSON file of row lists
(`{"train": [...], "val": [...], "test": [...]}`, rows of weights.npy) gives any other split.
"""

from __future__ import annotations

import json
import pathlib
import random
from typing import Any

import jax
import numpy as np

from gmn_jax.zoos.cnn import zoo as zoo_lib

PARTS = ('train', 'val', 'test')
# Kofinas et al.'s scripts for the Small CNN Zoo (`cnn_zoo_pna.sh`, `cnn_zoo_rt.sh`): the model
# preset (`NGGNN.PRESETS` / `NGT.PRESETS`), epochs and batch size. They train NG-T with a BCE
# loss; `gmn_jax.fit` uses MSE for every method.
PUBLISHED_TRAINING = {'nggnn': {'epochs': 300, 'batch_size': 128},
                      'ngt': {'epochs': 300, 'batch_size': 192}}


class SplitFileError(ValueError):
  """A split file cannot be read or does not fit the zoo."""


def read_split_file(path: str | pathlib.Path, n_rows: int) -> np.ndarray | dict[str, np.ndarray]:
  """NFN's index file (CSV, one row number a line) as `[n]` rows, or a JSON split as
  `{'train', 'val', 'test'} -> rows`. Host-side.

  Raises:
    SplitFileError: unreadable, rows out of [0, n_rows) or repeated, or JSON parts missing or
      overlapping.
  """
  path = pathlib.Path(path)
  try:
    text = path.read_text()
    if path.suffix == '.json':
      raw = json.loads(text)
      if not isinstance(raw, dict) or set(raw) != set(PARTS):
        raise SplitFileError(f'{path}: a JSON split needs exactly the keys {list(PARTS)}')
      parts = {k: np.asarray(raw[k], np.int64).reshape(-1) for k in PARTS}
      rows = np.concatenate(list(parts.values()))
    else:
      rows = np.asarray([int(line.split(',')[0]) for line in text.split()], np.int64)
      parts = None
  except (OSError, UnicodeDecodeError, ValueError, TypeError) as e:
    if isinstance(e, SplitFileError):
      raise
    raise SplitFileError(f'{path} is unreadable ({e}); expected one row number a line (NFN\'s '
                         'CSV) or a JSON object of row lists') from e
  bad = rows[(rows < 0) | (rows >= n_rows)]
  if bad.size:
    raise SplitFileError(f'{path} names rows {bad[:5].tolist()} outside the zoo\'s {n_rows} '
                         'rows: is it the index file of another zoo?')
  values, counts = np.unique(rows, return_counts=True)
  if np.any(counts > 1):
    raise SplitFileError(f'{path} names rows {values[counts > 1][:5].tolist()} more than once'
                         + (' (the parts overlap)' if parts is not None else ''))
  return rows if parts is None else parts


def nfn_split(order: np.ndarray, final: np.ndarray) -> dict[str, np.ndarray]:
  """NFN's split: the final rows of `order`, second half test, first half shuffled 80/20.

  Args:
    order: [n] rows of weights.npy, in the index file's order.
    final: [rows] bool, whether a row is kept (NFN: `step == 86`).

  Returns:
    `{'train', 'val', 'test'}` -> rows of weights.npy, in NFN's order.
  """
  kept = order[final[order]]
  test_start = int(0.5 * len(kept))
  trainval = list(range(test_start))
  val_start = int(0.8 * len(trainval))
  random.Random(0).shuffle(trainval)  # NFN's local seed: the same split on every machine
  return {'train': kept[trainval[:val_start]], 'val': kept[trainval[val_start:]],
          'test': kept[test_start:]}


def published_split(zoo: zoo_lib.Zoo, split_file: str | None, final_step: int | None,
                    seed: int) -> tuple[dict[str, np.ndarray], zoo_lib.Zoo, dict[str, Any]]:
  """The published protocol's split of `zoo`, and the zoo cut to the rows it uses.

  Args:
    zoo: with a `row` column (the row of weights.npy; `row` order for generated zoos).
    split_file: NFN's index CSV or a JSON split; None: rows permuted with `seed` (a split of
      the same shape, not NFN's).
    final_step: the `step` kept, as NFN's filter (86 for the published zoos); None: each
      run's last checkpoint (the same rows there, where every run has 9 checkpoints ending
      at step 86; our own zoos' steps differ between runs).
    seed: for the permutation when there is no split file.

  Returns:
    (`{'train', 'val', 'test'}` -> rows, the zoo restricted to those rows, a description for
    the results).

  Raises:
    SplitFileError: see `read_split_file`; or a JSON split names rows not at the final step.
  """
  table = zoo.table()
  n_rows = int(table['row'].max()) + 1 if len(table['row']) else 0
  if final_step is None:  # a row is final when no row of its run has a later snapshot
    last = np.full(int(table['member'].max()) + 1, -1)
    np.maximum.at(last, table['member'], table['snapshot'])
    is_final = table['snapshot'] == last[table['member']]
  else:
    is_final = table['step'] == final_step
  final = np.zeros(n_rows, bool)
  final[table['row']] = is_final
  source = split_file or f'rows permuted with seed {seed} (no split file: not NFN\'s split)'
  if split_file is None:
    split = nfn_split(np.random.default_rng(seed).permutation(n_rows), final)
  else:
    read = read_split_file(split_file, n_rows)
    if isinstance(read, dict):
      split = read
      late = np.concatenate(list(split.values()))
      late = late[~final[late]]
      if late.size:
        raise SplitFileError(f'{split_file} names rows {late[:5].tolist()} that are not final '
                             'checkpoints')
    else:
      split = nfn_split(read, final)
  keep = np.concatenate(list(split.values()))
  about = {'protocol': 'published', 'split_file': source,
           'final_step': 'last checkpoint of each run' if final_step is None else final_step,
           **{f'{k}_networks': len(v) for k, v in split.items()}}
  return split, restrict(zoo, keep), about


def restrict(zoo: zoo_lib.Zoo, rows: np.ndarray) -> zoo_lib.Zoo:
  """The zoo's rows whose `row` is in `rows` (each width keeps its order). Host-side."""
  params, metrics = {}, {}
  for width in zoo.widths:
    kept = np.flatnonzero(np.isin(zoo.metrics[width]['row'], rows))
    if kept.size:
      params[width] = jax.tree.map(lambda a, kept=kept: a[kept], zoo.params[width])
      metrics[width] = {k: v[kept] for k, v in zoo.metrics[width].items()}
  return zoo_lib.Zoo(params, metrics, zoo.input_shape, zoo.model_kwargs, zoo.config)


def positions(rows: np.ndarray, split: dict[str, np.ndarray]) -> tuple[list[np.ndarray], int]:
  """Each part's rows as positions in `rows` (the encoded table's `row` column), in the
  split's order; rows missing there (dropped as diverged) are skipped and counted."""
  where = {int(r): i for i, r in enumerate(rows)}
  parts = [np.asarray([where[int(r)] for r in split[k] if int(r) in where], np.int64)
           for k in PARTS]
  return parts, sum(len(split[k]) for k in PARTS) - sum(len(p) for p in parts)

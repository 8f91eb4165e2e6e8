"""Finite values where networks enter: which rows of a stacked zoo hold NaN or infinity.

Host-side (numpy; never under jit). `pg.encode` refuses a non-finite parameter when it is called
on concrete values, but under `jax.jit`/`jax.vmap` (how a zoo is encoded) it cannot raise, so
the functions that encode or read a zoo check here, on the host, and either drop the rows with
a count (`finite_rows`) or refuse them naming the rows (`check_rows` on the parameters before
encoding, `check_encoded` on the encoding).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np


def finite_rows(tree: Any) -> np.ndarray:
  """Which rows hold only finite values.

  Args:
    tree: a pytree whose leaves share a leading axis of `n` rows (a zoo's stacked parameters,
      or a stacked encoding `jax.vmap(pg.encode)(params)`); non-float leaves are skipped.

  Returns:
    `[n]` bool: True where every float value of the row, in every leaf, is finite.
  """
  leaves = [np.asarray(l) for l in jax.tree.leaves(jax.device_get(tree))]
  if not leaves:
    raise ValueError('finite_rows: the tree has no leaves')
  ok = np.ones(len(leaves[0]), bool)
  for leaf in leaves:
    for start in range(0, len(leaf), 4096):  # in chunks: a zoo's weights may be gigabytes
      part = leaf[start:start + 4096]
      if part.dtype.kind == 'V':  # bfloat16 and other ml_dtypes floats
        part = part.astype(np.float32)
      if part.dtype.kind in 'fc':
        ok[start:start + 4096] &= np.isfinite(part.reshape(len(part), -1)).all(axis=1)
  return ok


def describe_rows(rows: np.ndarray, limit: int = 8) -> str:
  """`'3 rows (2, 5, 9)'`, with at most `limit` row numbers shown."""
  rows = [int(r) for r in np.asarray(rows).ravel()]
  shown = ', '.join(map(str, rows[:limit])) + (', ...' if len(rows) > limit else '')
  return f'{len(rows)} row{"s" * (len(rows) != 1)} ({shown})'


def check_rows(tree: Any, where: str) -> None:
  """Refuses a zoo's stacked parameters holding NaN or infinite values.

  Args:
    tree: the parameters, stacked on a leading axis of rows (one network per row).
    where: names the zoo and its part (e.g. an architecture), for the message.

  Raises:
    ValueError: naming the rows that are not finite, and what to do.
  """
  ok = finite_rows(tree)
  if not ok.all():
    bad = np.flatnonzero(~ok)
    raise ValueError(f'{where}: {describe_rows(bad)} of {len(ok)} '
                     f'{"holds" if len(bad) == 1 else "hold"} NaN or infinite parameters. Drop '
                     'those networks from the zoo (or fit them again) before encoding.')


def check_encoded(graphs: Any, where: str) -> None:
  """Refuses a stacked encoding (`jax.vmap(pg.encode)`) holding NaN or infinite features.

  Args:
    graphs: a `jraph.GraphsTuple` stacked on a leading axis of rows (one network per row).
    where: names the zoo and its part (e.g. an architecture), for the message.

  Raises:
    ValueError: naming the rows whose nodes, edges or globals are not finite (their parameters,
      or probe outputs computed from them, overflowed or were NaN), and what to do.
  """
  parts = {'nodes': graphs.nodes, 'edges': graphs.edges, 'globals': graphs.globals}
  ok = finite_rows({k: v for k, v in parts.items() if v is not None})
  if not ok.all():
    bad = np.flatnonzero(~ok)
    raise ValueError(f'{where}: {describe_rows(bad)} of {len(ok)} '
                     f'{"encodes" if len(bad) == 1 else "encode"} to NaN or infinite features '
                     '(non-finite parameters, or probe outputs that overflow). Drop those '
                     'networks from the zoo (or fit them again) before encoding.')

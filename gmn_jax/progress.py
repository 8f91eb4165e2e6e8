"""Progress on long work, for every stage: a tqdm bar redrawn in place on a terminal; where the
output is not a terminal (a log file, CI) no bar at all, only one line per finished unit of
work (an epoch, a zoo shard), so that a ten-minute run does not write thousands of redraws.
Host-side.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar('T')


def on_terminal() -> bool:
  """Whether progress goes to a terminal (tqdm writes to stderr)."""
  return sys.stderr.isatty()


def bar(iterable: Iterable[T], *, enabled: bool = True, **tqdm_kwargs) -> Iterator[T]:
  """`iterable` with a tqdm bar when `enabled` and on a terminal; the bare iterable otherwise."""
  if not (enabled and on_terminal()):
    return iter(iterable)
  return iter(tqdm(iterable, **tqdm_kwargs))


def line(text: str, *, enabled: bool = True) -> None:
  """Prints one progress line to stderr when `enabled` and *not* on a terminal (where the bar
  already shows it)."""
  if enabled and not on_terminal():
    print(text, file=sys.stderr, flush=True)

"""The command-line flags every experiment shares: its docstring as help, --workdir, --tiny and
--methods, and the overrides of a config by the flags given."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any


def parser(doc: str, methods: Sequence[str], workdir: str | None,
           tiny: str = 'the test suite config (seconds)') -> argparse.ArgumentParser:
  """A parser whose description is `doc`'s first paragraph and whose epilog is the rest, with
  the shared flags: --workdir (default `workdir`; None: the experiment picks one from other
  flags), --tiny (help `tiny`) and --methods (choices `methods`)."""
  description, _, epilog = doc.partition('\n\n')
  out = argparse.ArgumentParser(description=' '.join(description.split()), epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
  out.add_argument('--workdir', default=workdir, help='where the report and everything it '
                   'is made from go' + (' (default: %(default)s)' if workdir else ''))
  out.add_argument('--tiny', action='store_true', help=tiny)
  out.add_argument('--methods', nargs='+', choices=methods, help='which methods to run')
  return out


def given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
  """`{name: value}` of the flags among `names` that were given (lists as tuples)."""
  values = {name: getattr(args, name) for name in names}
  return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if v is not None}


def replace(config: Any, **changes: Any) -> Any:
  """`config` (a dataclass) with the `changes` that are not None."""
  return dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})

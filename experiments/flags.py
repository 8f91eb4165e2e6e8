"""Command-line flags read off a task's config dataclass, and one-line errors.

Every field of the config with a plain value (int, float, str, bool, a tuple of those, or
None-able ones) is a flag, nested configs with a dot: `--hidden`, `--train.epochs`,
`--zoo.num-members`; its help is the field's line under `Attributes:` in the class's
docstring and its default is the default preset's value. `--tiny` (and `--quick` where the
config has that preset) pick the preset the other flags override. Short aliases keep the
common flags (`--epochs` for `--train.epochs`, `--members` for `--zoo.num-members`).

A dataclass walker of ~150 lines rather than a dependency: the configs are frozen, nested
dataclasses whose flags must keep their short names, and neither absl/ml_collections'
`config_flags` nor tyro keeps them without the same alias table; this keeps the config the
one source of truth with no new package to pin.

`main(run)` runs an experiment's `run(argv)` and turns the library's errors (`ValueError`
and its subclasses `ZooError`, `UnsupportedModelError`, `SymmetryError`, `SplitFileError`;
`FloatingPointError`; `FileNotFoundError`) into one line on stderr and exit code 1;
`--debug` or `GMN_JAX_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_SCALARS = (int, float, str, bool)
ERRORS = (ValueError, FloatingPointError, FileNotFoundError)


def _attribute_help(cls: type) -> dict[str, str]:
  """`{field: text}` from the `Attributes:` section of `cls`'s docstring (Google style;
  `a, b: text` documents both)."""
  doc = cls.__doc__ or ''
  _, found, section = doc.partition('Attributes:')
  if not found:
    return {}
  out, names, text = {}, [], []
  for line in section.splitlines()[1:]:
    if line.strip() and len(line) - len(line.lstrip()) <= 2:
      break  # the section ended (a dedented line)
    match = re.match(r'\s{4}([\w, ]+):\s*(.*)$', line)
    if match and len(line) - len(line.lstrip()) == 4:
      for name in names:
        out[name] = ' '.join(text)
      names, text = [n.strip() for n in match.group(1).split(',')], [match.group(2)]
    elif names:
      text.append(line.strip())
  for name in names:
    out[name] = ' '.join(text)
  return {k: v.replace('%', '%%') for k, v in out.items()}


def _unwrap_optional(hint: Any) -> Any:
  args = typing.get_args(hint)
  if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
    rest = [a for a in args if a is not type(None)]
    return rest[0] if len(rest) == 1 else None
  return hint


def _argument(hint: Any) -> dict[str, Any] | None:
  """argparse keyword arguments for a field of type `hint`; None: not a flag."""
  hint = _unwrap_optional(hint)
  if hint in _SCALARS:
    return ({'action': argparse.BooleanOptionalAction} if hint is bool else {'type': hint})
  if typing.get_origin(hint) is tuple:
    args = typing.get_args(hint)
    if len(args) == 2 and args[1] is Ellipsis and args[0] in _SCALARS:
      return {'type': args[0], 'nargs': '+'}
    if args and all(a is args[0] for a in args) and args[0] in _SCALARS:
      return {'type': args[0], 'nargs': len(args)}
  return None


def _fields(cls: type, prefix: str = ''):
  """(dotted path, argparse kwargs, help) of every flag field of config class `cls`."""
  hints = typing.get_type_hints(cls)
  helps = _attribute_help(cls)
  for field in dataclasses.fields(cls):
    hint = hints[field.name]
    path = prefix + field.name
    if dataclasses.is_dataclass(hint):
      yield from _fields(hint, path + '.')
      continue
    kwargs = _argument(hint)
    if kwargs is not None:
      yield path, kwargs, helps.get(field.name, '')


def _get(config: Any, path: str) -> Any:
  for name in path.split('.'):
    config = getattr(config, name)
  return config


def _replace(config: Any, changes: Mapping[str, Any]) -> Any:
  """`config` with every `{dotted path: value}` of `changes`, in one `dataclasses.replace` per
  dataclass (a config may refuse one change without another, e.g. `final_step` without
  `protocol`)."""
  top, nested = {}, {}
  for path, value in changes.items():
    head, _, rest = path.partition('.')
    if rest:
      nested.setdefault(head, {})[rest] = value
    else:
      top[head] = value
  for head, sub in nested.items():
    top[head] = _replace(getattr(config, head), sub)
  return dataclasses.replace(config, **top) if top else config


def _flag(path: str) -> str:
  return '--' + path.replace('_', '-')


def parser(doc: str, config_class: type, workdir: str | None,
           aliases: Mapping[str, str] | None = None,
           choices: Mapping[str, Sequence[Any]] | None = None,
           tiny: str = 'the test suite config (seconds)',
           workdir_rule: str = '') -> argparse.ArgumentParser:
  """The experiment's parser: its docstring as help, `--workdir`, `--tiny` (and `--quick`
  where `config_class` has that preset), `--debug`, and a flag per config field.

  Args:
    doc: the experiment's module docstring (first paragraph: description; rest: epilog).
    config_class: the task's config dataclass (with `default()` and `tiny()` presets).
    workdir: `--workdir`'s default (None: the experiment picks one from other flags,
      `workdir_rule` says how, e.g. 'workdir/inr_editing_<edit>').
    aliases: short flag -> dotted field path (`{'epochs': 'train.epochs'}`).
    choices: dotted field path -> its allowed values (`{'methods': METHODS}`).
    tiny: `--tiny`'s help.
    workdir_rule: `--workdir`'s default in words where `workdir` is None.
  """
  description, _, epilog = doc.partition('\n\n')
  out = argparse.ArgumentParser(description=' '.join(description.split()), epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
  rule = '%(default)s' if workdir else workdir_rule
  out.add_argument('--workdir', default=workdir, help='where the report and everything it '
                   'is made from go' + (f' (default: {rule})' if rule else ''))
  out.add_argument('--tiny', action='store_true', help=tiny)
  if hasattr(config_class, 'quick'):
    out.add_argument('--quick', action='store_true', help='a smoke run (minutes)')
  out.add_argument('--debug', action='store_true', help='show the traceback of an error '
                   '(also GMN_JAX_DEBUG=1)')
  default = config_class.default()
  fields = list(_fields(config_class))
  unknown = set((aliases or {}).values()) - {path for path, _, _ in fields}
  if unknown:
    raise ValueError(f'aliases of no flag field of {config_class.__name__}: {sorted(unknown)}')
  group = out.add_argument_group('config', f'fields of {config_class.__name__}, over the '
                                 'preset (--tiny, --quick, else the default)')
  for path, kwargs, text in fields:
    value = _get(default, path)
    shown = ' '.join(map(str, value)) if isinstance(value, tuple) else value
    extra = {'choices': choices[path]} if choices and path in choices else {}
    names = [_flag(path)] + [_flag(a) for a, p in (aliases or {}).items() if p == path]
    if 'type' in kwargs and 'choices' not in extra:
      extra['metavar'] = path.rpartition('.')[2].upper()
    group.add_argument(*names, dest=path, default=argparse.SUPPRESS, **kwargs, **extra,
                       help=f'{text} (default: {shown})'.strip())
  out.set_defaults(_config_class=config_class, _config_paths=[p for p, _, _ in fields])
  return out


def config(args: argparse.Namespace, preset: str | Callable[[], Any] | None = None) -> Any:
  """The config the flags ask for: the preset (`--tiny`, `--quick`, else `preset`, a preset's
  name or a function returning a config, else `default()`) with every config flag given
  replaced (tuples for lists). `--seed` seeds training too (`train.seed`) unless
  `--train.seed` is given.

  Raises:
    ValueError: the config refuses a value (its `__post_init__`).
  """
  cls = args._config_class  # pylint: disable=protected-access
  preset = ('tiny' if args.tiny else 'quick' if getattr(args, 'quick', False)
            else preset or 'default')
  out = preset() if callable(preset) else getattr(cls, preset)()
  given_ = dict(vars(args))
  if ('seed' in given_ and 'train.seed' not in given_ and hasattr(out, 'train')
      and hasattr(out.train, 'seed')):
    given_['train.seed'] = given_['seed']
  paths = args._config_paths  # pylint: disable=protected-access
  return _replace(out, {path: tuple(value) if isinstance(value, list) else value
                        for path, value in given_.items() if path in paths})


def given(args: argparse.Namespace, path: str) -> bool:
  """Whether the config flag of `path` was given."""
  return path in vars(args)


def main(run: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> None:
  """Runs `run(argv)`; the library's errors become one line on stderr and exit code 1
  (`--debug` in argv or `GMN_JAX_DEBUG=1`: the traceback)."""
  arguments = sys.argv[1:] if argv is None else list(argv)
  debug = '--debug' in arguments or os.environ.get('GMN_JAX_DEBUG', '') not in ('', '0')
  try:
    run(argv)
  except ERRORS as error:
    if debug:
      raise
    print(f'error: {type(error).__name__}: {error} (--debug or GMN_JAX_DEBUG=1 for the '
          'traceback)', file=sys.stderr)
    raise SystemExit(1) from None

"""Reading checkpoints without their model: find the item, restore it as numpy arrays.

Host-side (numpy, file system; never under jit). A checkpoint path may be a `CheckpointManager`
directory (numbered step folders, each holding one folder per item), one step folder, one
item folder (what `StandardCheckpointer.save` or `PyTreeCheckpointer.save` wrote), or one
`flax.serialization` msgpack file (`to_bytes` / `msgpack_serialize` of a pytree). Orbax items
are restored from their own metadata (`PyTreeCheckpointer.metadata`) with numpy restore types,
msgpack files with `msgpack_restore`, so that no target pytree, and so no model code, is needed.

Errors are `ConversionError`s with the exit code `gmn-convert` returns (`EXIT_CODES`).
"""

from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gmn_jax.io.exit_codes import (EXIT_CODES, MISMATCH, MISSING, NO_PARAMETERS,  # re-exported
                                   NOT_CHECKPOINT, NOT_IMPORTABLE, UNSUPPORTED, UNWRITABLE,
                                   USAGE, ConversionError)

Path = tuple[str, ...]

_ITEM_FILES = ('_METADATA', 'manifest.ocdbt', '_sharding', 'checkpoint')
_PREFERRED_ITEMS = ('params', 'state', 'train_state', 'model', 'default')


# ---- finding the item -----------------------------------------------------------------------


def _is_item(d: pathlib.Path) -> bool:
  return d.is_dir() and any((d / f).exists() for f in _ITEM_FILES)


def _step_number(d: pathlib.Path) -> int | None:
  if not d.is_dir() or 'tmp' in d.name:
    return None
  match = re.fullmatch(r'(?:.*_)?(\d+)', d.name)
  if match is None:
    return None
  if not ((d / '_CHECKPOINT_METADATA').exists() or (d / 'commit_success.txt').exists()
          or _is_item(d) or any(_is_item(c) for c in d.iterdir())):
    return None
  return int(match.group(1))


def _steps(root: pathlib.Path) -> dict[int, pathlib.Path]:
  found = {}
  for d in root.iterdir():
    n = _step_number(d)
    if n is not None:
      found[n] = d
  return dict(sorted(found.items()))


def _item_in_step(step_dir: pathlib.Path, item: str | None) -> pathlib.Path:
  if _is_item(step_dir) and item is None:
    return step_dir
  items = sorted(c for c in step_dir.iterdir() if _is_item(c))
  names = [c.name for c in items]
  if item is not None:
    if item not in names:
      raise ConversionError(USAGE, f'{step_dir} has no item {item!r}; its items are {names}.')
    return step_dir / item
  if not items:
    raise ConversionError(NOT_CHECKPOINT, f'{step_dir} is a checkpoint step without an item '
                          'holding arrays (only JSON or other metadata).')
  if len(items) == 1:
    return items[0]
  with_arrays = [c for c in items if float_leaves(_metadata_tree(c))]
  if len(with_arrays) == 1:
    return with_arrays[0]
  for name in _PREFERRED_ITEMS:
    if name in [c.name for c in with_arrays]:
      return step_dir / name
  raise ConversionError(USAGE, f'{step_dir} has several items holding arrays: '
                        f'{[c.name for c in with_arrays]}; pass --item NAME to choose one.')


def locate(path: str | os.PathLike, *, step: int | None = None, all_steps: bool = False,
           item: str | None = None) -> list[tuple[int | None, pathlib.Path]]:
  """The (step, item folder) pairs to convert. Host-side.

  Raises:
    ConversionError: missing path (3), not a checkpoint (4), unknown step or item (2).
  """
  path = pathlib.Path(path).expanduser()
  if not path.exists():
    raise ConversionError(MISSING, f'{path} does not exist. Pass the folder that orbax wrote '
                          '(a CheckpointManager directory, one step folder, or one item), a '
                          'msgpack file, or a transformers model directory.')
  if not path.is_dir():
    if step is not None or all_steps or item is not None:
      raise ConversionError(USAGE, f'{path} is a single msgpack file; leave out --step, '
                            '--all-steps and --item.')
    return [(None, path)]  # a flax.serialization msgpack file (`restore` checks it)
  steps = {} if _is_item(path) else _steps(path)
  if not steps:
    if step is not None or all_steps:
      raise ConversionError(USAGE, f'{path} is a single checkpoint, not a CheckpointManager '
                            'directory with numbered steps; leave out --step/--all-steps.')
    if _is_item(path):
      if item is not None:
        raise ConversionError(USAGE, f'{path} is one checkpoint item; leave out --item.')
      return [(None, path)]
    if (path / '_CHECKPOINT_METADATA').exists() or any(_is_item(c) for c in path.iterdir()):
      return [(None, _item_in_step(path, item))]
    raise ConversionError(NOT_CHECKPOINT, f'{path} is not an orbax checkpoint: it has neither '
                          'numbered step folders nor orbax metadata (_METADATA, '
                          '_CHECKPOINT_METADATA). Pass the directory given to CheckpointManager '
                          'or to StandardCheckpointer.save.')
  if all_steps:
    chosen = list(steps)
  elif step is not None:
    if step not in steps:
      raise ConversionError(USAGE, f'{path} has no step {step}; its steps are {list(steps)}.')
    chosen = [step]
  else:
    chosen = [max(steps)]
  try:
    return [(s, _item_in_step(steps[s], item)) for s in chosen]
  except ConversionError as e:
    if step is None and not all_steps:
      raise latest_unreadable(e, chosen[0], list(steps)) from e
    raise


def step_numbers(path: str | os.PathLike) -> list[int]:
  """The numbered steps of a `CheckpointManager` directory, in order (empty for other paths)."""
  path = pathlib.Path(path).expanduser()
  return list(_steps(path)) if path.is_dir() and not _is_item(path) else []


def latest_unreadable(error: ConversionError, latest: int, steps: list[int]) -> ConversionError:
  """`error` (about the default, latest step) with the `--step` that reads an earlier one."""
  earlier = [s for s in steps if s != latest]
  if error.exit_code != NOT_CHECKPOINT or not earlier:
    return error
  return ConversionError(error.exit_code, f'{error}\nThe latest step ({latest}) cannot be read '
                         '(an interrupted or corrupt save?); pass --step '
                         f'{earlier[-1]} to read the one before it (steps: {steps}).')


# ---- reading the item -----------------------------------------------------------------------


def _checkpointer():
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  return ocp, ocp.PyTreeCheckpointer()


def _metadata_tree(item_dir: pathlib.Path) -> Any:
  ocp, checkpointer = _checkpointer()
  try:
    metadata = checkpointer.metadata(item_dir.absolute())  # orbax refuses relative paths
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(NOT_CHECKPOINT, f'orbax cannot read {item_dir}: {type(e).__name__}: '
                          f'{e}') from e
  del ocp
  return getattr(metadata, 'item_metadata', metadata)


def read_msgpack(file: pathlib.Path) -> Any:
  """The pytree in a `flax.serialization` msgpack file, numpy leaves. Host-side.

  Raises:
    ConversionError(4): the file is not msgpack, is truncated or has trailing bytes (naming
      the file and what to do); a git-lfs pointer is recognised as such.
  """
  from flax import serialization  # pylint: disable=g-import-not-at-top
  data = file.read_bytes()
  try:
    return serialization.msgpack_restore(data)
  except Exception as e:  # pylint: disable=broad-except  (msgpack raises ValueError subclasses)
    if data.startswith(b'version https://git-lfs'):
      why = ('it is a git-lfs pointer, not the weights: run `git lfs pull` in the cloned '
             'repository (or download the file itself)')
    elif not data:
      why = 'it is empty'
    else:
      why = (f'msgpack cannot read it ({type(e).__name__}: {e}); a truncated download or a '
             'file that is not flax.serialization msgpack. Download or save it again')
    raise ConversionError(NOT_CHECKPOINT, f'{file} is not a readable msgpack checkpoint: {why}. '
                          'gmn-convert reads orbax checkpoint folders, flax.serialization '
                          'msgpack files (to_bytes / msgpack_serialize) and transformers model '
                          'directories (config.json + flax_model.msgpack).') from e


def restore(item_dir: pathlib.Path) -> Any:
  """The item's pytree with numpy leaves (no target needed): an orbax item folder, or a
  msgpack file (`read_msgpack`). Host-side."""
  if item_dir.is_file():
    return read_msgpack(item_dir)
  ocp, checkpointer = _checkpointer()
  tree = _metadata_tree(item_dir)
  restore_args = jax.tree_util.tree_map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray),
                                        tree)
  try:
    return checkpointer.restore(item_dir.absolute(),
                                args=ocp.args.PyTreeRestore(restore_args=restore_args))
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(NOT_CHECKPOINT, f'orbax cannot restore {item_dir}: '
                          f'{type(e).__name__}: {e}') from e


def flatten(tree: Any, prefix: Path = ()) -> dict[Path, Any]:
  """`{path: leaf}` with string keys; nnx `{'value': leaf}` wrappers are removed."""
  if isinstance(tree, Mapping):
    if set(tree) == {'value'} and not isinstance(tree['value'], (Mapping, list, tuple)):
      return {prefix: tree['value']}
    items = tree.items()
  elif isinstance(tree, (list, tuple)):
    items = enumerate(tree)
  elif tree is None:
    return {}
  else:
    return {prefix: tree}
  out = {}
  for key, value in items:
    out.update(flatten(value, prefix + (str(key),)))
  return out


def is_float(leaf: Any) -> bool:
  """A non-empty floating-point array (or orbax array metadata)."""
  dtype = getattr(leaf, 'dtype', None)
  size = int(np.prod(getattr(leaf, 'shape', None) or np.shape(leaf) or (1,)))
  return dtype is not None and jnp.issubdtype(dtype, jnp.floating) and size > 0


def float_leaves(tree: Any) -> dict[Path, Any]:
  """`flatten(tree)` restricted to floating-point arrays: the candidate parameters."""
  return {p: l for p, l in flatten(tree).items() if is_float(l)}

"""How a zoo lives on disk: a config, then shards written atomically with checksums. Host-side.

Shared by every zoo format that gmn_jax generates (`cnn.zoo`'s CNN zoo, `diverse.zoo`'s
diverse zoo, `inr.zoo`'s INR zoo). A zoo directory holds `config.json` (the generating config and a format tag; a rerun
with the same config reuses the zoo, another config is refused) and, per shard,
`<name>.npz` (arrays) and `<name>.json` (what the shard holds and the npz's sha256). Both are
written to a temporary name and moved into place with `os.replace`, the json last, so a shard
is finished exactly when its json exists, describes the shard the config plans and its
checksum matches: an interrupted generation keeps its finished shards and resumes with the
first unfinished one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import warnings
from typing import Any, Callable, Iterable, Mapping, TypeVar

import jax
import numpy as np

from gmn_jax.zoos.cnn.config import ZooError

_Shard = TypeVar('_Shard')


def sha256(path: pathlib.Path) -> str:
  """Hex sha256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def write_atomic(path: pathlib.Path, write: Callable[[Any], None]) -> None:
  """Calls `write(f)` on a temporary file, syncs it and moves it to `path` in one step."""
  tmp = path.with_name(f'.{path.name}.tmp{os.getpid()}')
  with open(tmp, 'wb') as f:
    write(f)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_json_atomic(path: pathlib.Path, data: Any) -> None:
  write_atomic(path, lambda f: f.write(json.dumps(data, indent=1).encode()))


def flatten(tree, prefix: str) -> dict[str, np.ndarray]:
  """`{'<prefix>/<key>/<key>...': leaf}` of a nested dict, as npz keys."""
  flat = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    flat['/'.join([prefix] + [str(p.key) for p in path])] = np.asarray(leaf)
  return flat


def unflatten(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, Any]:
  """The nested dict under `prefix` of `flatten`'s keys (other keys are ignored)."""
  tree: dict[str, Any] = {}
  for key, value in arrays.items():
    parts = key.split('/')
    if parts[0] != prefix:
      continue
    node = tree
    for part in parts[1:-1]:
      node = node.setdefault(part, {})
    node[parts[-1]] = value
  return tree


def write_shard(directory: pathlib.Path, name: str, arrays: Mapping[str, np.ndarray],
                meta: Mapping[str, Any]) -> None:
  """Writes `<name>.npz` and then `<name>.json` (`meta` plus the npz's sha256)."""
  npz = directory / f'{name}.npz'
  write_atomic(npz, lambda f: np.savez(f, **arrays))
  write_json_atomic(directory / f'{name}.json', {**meta, 'sha256': sha256(npz)})


def shard_problem(directory: pathlib.Path, name: str,
                  expected: Mapping[str, Any]) -> tuple[str, dict | None]:
  """('', meta) for a finished shard; else ('missing' | why it is refused, None).

  Args:
    directory: the zoo directory.
    name: the shard's file stem.
    expected: entries its json must hold (e.g. the member ids the config plans for it).
  """
  npz, meta_path = directory / f'{name}.npz', directory / f'{name}.json'
  if not meta_path.exists():
    return ('missing' if not npz.exists() else
            f'{npz.name} has no {meta_path.name} (an interrupted write)'), None
  try:
    meta = json.loads(meta_path.read_text())
    differ = sorted(k for k, v in expected.items() if meta[k] != v)
    if differ:
      return f'{meta_path.name} holds another {", ".join(differ)} than the config plans', None
  except (ValueError, KeyError, TypeError) as e:
    return f'{meta_path.name} is unreadable ({type(e).__name__}: {e})', None
  if not npz.exists():
    return f'{npz.name} is missing', None
  if sha256(npz) != meta.get('sha256'):
    return f'{npz.name} does not match the checksum in {meta_path.name}', None
  return '', meta


def unfinished(directory: pathlib.Path, plan: Iterable[_Shard], name: Callable[[_Shard], str],
               expected: Callable[[_Shard], Mapping[str, Any]], *, zoo: str,
               redo: str) -> list[_Shard]:
  """The shards of `plan` still to make, in plan order: missing ones, and refused ones.

  A shard is refused when `shard_problem` finds its files unfinished, corrupt or describing
  another shard than `expected(shard)`; each refused shard is named in a warning
  (`"<zoo> <directory>: <name> is refused (<why>); <redo>, the other shards are kept"`).

  Args:
    directory: the zoo directory.
    plan: the shards the config plans.
    name: a shard's file stem.
    expected: the entries a shard's json must hold.
    zoo: what the directory holds, for the warning (e.g. 'zoo', 'INR zoo').
    redo: what happens to a refused shard, for the warning (e.g. 'regenerating it').
  """
  todo = []
  for shard in plan:
    problem, _ = shard_problem(directory, name(shard), expected(shard))
    if problem and problem != 'missing':
      warnings.warn(f'{zoo} {directory}: {name(shard)} is refused ({problem}); {redo}, '
                    'the other shards are kept', stacklevel=3)
    if problem:
      todo.append(shard)
  return todo


def read_shard(directory: pathlib.Path, name: str) -> dict[str, np.ndarray]:
  """A finished shard's arrays (check it with `shard_problem` first); never unpickles."""
  try:
    with np.load(directory / f'{name}.npz', allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  except (OSError, ValueError) as e:
    raise ZooError(f'zoo {directory}: {name}.npz is unreadable ({e})') from e


def check_config(directory: pathlib.Path, config: Any, config_type: type, generate: str) -> Any:
  """The config stored in `directory`; with `config`, stores it there first if none is.

  Args:
    directory: the zoo directory (created when `config` is given).
    config: the requested config, or None to only read.
    config_type: its dataclass, with `to_json` and `from_json`.
    generate: the call that creates such a zoo, for the error message.

  Raises:
    ZooError: no config.json and no `config`; a corrupt config.json; or one that differs
      from `config` (the fields that differ are named).
  """
  path = directory / 'config.json'
  if not path.exists():
    if config is None:
      raise ZooError(f'{directory} holds no zoo (no config.json); create one with {generate}')
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, config.to_json())
    return config
  try:
    stored = config_type.from_json(json.loads(path.read_text()))
  except (ValueError, TypeError) as e:
    raise ZooError(f'{path} is corrupt ({type(e).__name__}: {e}); delete the directory to '
                   'start again') from e
  if config is not None and stored != config:
    changed = {f.name: (getattr(stored, f.name), getattr(config, f.name))
               for f in dataclasses.fields(config_type)
               if getattr(stored, f.name) != getattr(config, f.name)}
    raise ZooError(f'{directory} holds a zoo of another config (stored vs requested: '
                   f'{changed}); use another directory, or delete this one to regenerate')
  return stored

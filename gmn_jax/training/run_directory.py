"""A resumable run's directory: its identity (`run.json`), orbax checkpoints and `log.jsonl`.

Every resumable driver (`training.fit`, learned-optimizer meta-training, INR editing) keeps
one run per directory:

    <run_dir>/run.json       what the run is (model, settings, data split); a different run
                             is refused rather than resumed
    <run_dir>/checkpoints/   the whole train state, saved with orbax (the last two kept)
    <run_dir>/log.jsonl      one JSON record per finished epoch (or meta-step)

The log is rewritten after every epoch, the checkpoints only as often as the driver asks
(every N epochs and the last): a resumed run starts from the latest checkpoint and keeps only
as much of the log as that checkpoint covers, so records written after it (by a run killed
before its next checkpoint) are computed again. Host-side.

Checkpoints are written in the background (orbax's asynchronous save) while training goes
on; a save waits only for the one before it, and `close` for the last (waiting for each save
as soon as it starts would block the run for the whole write).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp


def _describe(value: Any) -> Any:
  """A model field as `run.json` records it (functions and classes by name)."""
  if isinstance(value, (int, float, str, bool, type(None))):
    return value
  if isinstance(value, (tuple, list)):
    return [_describe(x) for x in value]
  return getattr(value, '__name__', type(value).__name__)


def model_fields(model: nn.Module, defaults: bool = False) -> dict[str, Any]:
  """A Flax module's fields as `run.json` records them (`defaults=False`), or the class's
  default values of those fields (`defaults=True`)."""
  fields = {}
  for f in dataclasses.fields(model):
    if f.name in ('parent', 'name'):
      continue
    if not defaults:
      fields[f.name] = getattr(model, f.name)
    elif f.default is not dataclasses.MISSING:
      fields[f.name] = f.default
    elif f.default_factory is not dataclasses.MISSING:
      fields[f.name] = f.default_factory()
  return json.loads(json.dumps({k: _describe(v) for k, v in fields.items()}))


def rows_digest(rows: np.ndarray) -> str:
  """A short digest of an index set, for `run.json` (the split a run trained on)."""
  return hashlib.sha256(np.asarray(rows, np.int64).tobytes()).hexdigest()[:16]


def _without_defaults(identity: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
  fields = {k: v for k, v in identity.get('model_fields', {}).items()
            if k not in defaults or v != defaults[k]}
  return {**identity, 'model_fields': fields}


def check_run(run_dir: pathlib.Path, identity: dict[str, Any],
              model_defaults: dict[str, Any] | None = None) -> None:
  """Claims `run_dir` for a run, so that a resumed run never mixes two runs' checkpoints.

  Host-side. Writes `run_dir/run.json` when there is none (on process 0 only).

  Args:
    run_dir: the run's directory (existing).
    identity: JSON-able description of everything that must match for a resume (settings,
      model, data); compared after a JSON round trip, so tuples equal lists.
    model_defaults: the model class's field defaults (`model_fields(model, defaults=True)`):
      entries of `identity['model_fields']` at their default value are left out of the
      comparison on both sides, so that a field added to the model later (at a default that
      computes the same model) does not stop older run directories from resuming.

  Raises:
    ValueError: `run_dir/run.json` describes a different run.
  """
  identity = json.loads(json.dumps(identity))
  path = run_dir / 'run.json'
  if not path.exists():
    if jax.process_index() == 0:  # one writer when several hosts share the directory
      path.write_text(json.dumps(identity, indent=1))
    return
  saved = json.loads(path.read_text())
  if model_defaults is not None:
    saved, identity = (_without_defaults(x, model_defaults) for x in (saved, identity))
  if saved != identity:
    differ = sorted(k for k in saved.keys() | identity.keys() if saved.get(k) != identity.get(k))
    raise ValueError(
        f'{run_dir} holds checkpoints of a different run ({", ".join(differ)} differ), so it '
        'cannot be resumed. Use another work directory, or delete this one to start over.')


class RunDirectory:
  """One resumable run: `run.json`, orbax `checkpoints/` and `log.jsonl` in `path`. Host-side.

  Args:
    path: the run's directory (created).
    identity: what `run.json` must hold for this run (`check_run`); None: not checked
      (the caller checks a directory above it).
    model_defaults: see `check_run`.
    max_to_keep: checkpoints kept.

  Raises:
    ValueError: `path` holds a different run.
  """

  def __init__(self, path: str | pathlib.Path, identity: dict[str, Any] | None = None,
               model_defaults: dict[str, Any] | None = None, max_to_keep: int = 2):
    self.path = pathlib.Path(path)
    self.path.mkdir(parents=True, exist_ok=True)
    if identity is not None:
      check_run(self.path, identity, model_defaults)
    self.log = self.path / 'log.jsonl'
    self.manager = ocp.CheckpointManager(
        (self.path / 'checkpoints').absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def __enter__(self) -> 'RunDirectory':
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def restore(self, state: dict[str, Any], step_key: str
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The latest saved state (shaped and placed like `state`) and the log records up to it;
    `state` and [] when nothing was saved. `state[step_key]` counts the finished steps."""
    self.manager.wait_until_finished()
    step = self.manager.latest_step()
    if step is None:
      return state, []
    state = self.manager.restore(step, args=ocp.args.StandardRestore(state))
    history = [json.loads(line) for line in self.log.read_text().splitlines()]
    return state, history[:int(state[step_key])]

  def save(self, step: int, state: dict[str, Any], history: list[dict[str, Any]],
           checkpoint: bool = True) -> None:
    """Writes the log, then (with `checkpoint`) starts saving checkpoint `step` of `state`
    in the background; it is complete by the next `save`, `restore` or `close`. Numpy leaves of
    `state` must not be changed in place afterwards (the drivers build a new state each
    epoch; jax arrays cannot change)."""
    if jax.process_index() == 0:
      self.log.write_text(''.join(json.dumps(r) + '\n' for r in history))
    if checkpoint:
      self.manager.save(step, args=ocp.args.StandardSave(state))

  def close(self) -> None:
    """Waits for the checkpoint being written, then releases the directory."""
    self.manager.close()

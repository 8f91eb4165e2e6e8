"""Checkpoints to parameter graphs: `convert_checkpoint` and the `gmn-convert` command.

Host-side (numpy, data-dependent shapes, never under jit). Three formats: orbax checkpoints,
`flax.serialization` msgpack files, and transformers model directories (`config.json` + Flax
weights, see `transformers_dirs.py`: the model comes from the config). Three steps:

1. *Find* the checkpoint item and restore it as numpy arrays, without a target (see
   `checkpoints.py`): the latest step of a `CheckpointManager` directory, one `--step`, or
   every step; or the msgpack file.
2. *Find the variables in it*: with a model, the subtree whose paths and shapes match what the
   model expects (linen: its `params` and `batch_stats` collections, e.g. at the root of a
   `{'params': ..., 'batch_stats': ...}` item or inside a saved `TrainState`; nnx: its
   `nnx.Param`/`nnx.BatchStat` state, with or without nnx's `{'value': ...}` leaf wrappers).
   Without a model, the first subtree whose children are all Dense/Conv layers
   (`{'kernel', 'bias'}`), walked with `from_params`.
3. *Trace once, encode every step* with `gmn_jax.trace` / `from_params` and `pg.encode`.

Errors carry an exit code for the command line (see `EXIT_CODES`) and say what to do.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from gmn_jax.io.model_spec import (build_model, example_inputs, is_nnx_module, linen_template,
                                   model_failed)
from gmn_jax.io.checkpoints import (MISMATCH, NO_PARAMETERS, NOT_CHECKPOINT, UNSUPPORTED, USAGE,
                                    ConversionError, Path, float_leaves, flatten,
                                    latest_unreadable, locate, restore, step_numbers)
from gmn_jax.io.transformers_dirs import is_transformers_dir, load_transformers_dir


@dataclasses.dataclass
class Converted:
  """What `convert_checkpoint` found and made.

  Attributes:
    pg: the `ParameterGraph` of the architecture (traced once).
    graphs: one `jraph.GraphsTuple` per converted step (`pg.encode` of its variables).
    steps: the step of each graph (None for a checkpoint that is not in a step folder).
    variables: the variables of the last converted step, as `pg.encode` takes them.
    items: the item folder (or msgpack file) read for each step.
    model: the model's name (the Flax class for a transformers directory), or 'from_params'
      for a plain chain.
    n_float: floating-point values in the (last) checkpoint item.
    prefix: where in the item the variables were found ('' for its root).
  """

  pg: Any
  graphs: list[Any]
  steps: list[int | None]
  variables: Any
  items: list[pathlib.Path]
  model: str
  n_float: int
  prefix: str

  def report(self) -> str:
    """A human-readable summary: source, graph summary, parameters covered."""
    steps = [s for s in self.steps if s is not None]
    where = str(self.items[-1]) if len(self.items) == 1 else (
        f'{len(self.items)} steps ({steps[0]}..{steps[-1]}) under {self.items[0].parent.parent}')
    lines = [f'checkpoint: {where}', f'model: {self.model}'
             + (f'  (variables at {self.prefix})' if self.prefix else ''), self.pg.summary()]
    n = self.pg.n_params
    rest = self.n_float - n
    lines.append(f'  parameters covered: {n} of {self.n_float} floating-point values in the item'
                 + (f' ({rest} others, e.g. optimizer state, not part of the model)' if rest
                    else ' (all)'))
    return '\n'.join(lines)


def _show(path: Path) -> str:
  return '/'.join(path) if path else '(root)'


# ---- matching the model's variables ---------------------------------------------------------


def _prefixes(flat: Mapping[Path, Any]) -> list[Path]:
  found = {p[:i] for p in flat for i in range(len(p))}
  return sorted(found, key=lambda p: (len(p), p))


_CHECK_MODEL = ('Check --model-args (layer sizes) and --input-shape, and that the checkpoint '
                'was saved from this model.')


def match(flat: Mapping[Path, Any], expected: Mapping[Path, tuple[int, ...]],
          fix: str = _CHECK_MODEL) -> Path:
  """The prefix under which `flat` holds every path of `expected` with the expected shape.

  `fix` ends the error message: what to do.

  Raises:
    ConversionError(7): naming the missing paths and the shapes that differ, at the best
      partial match.
  """
  best, best_score = (), (-1, -1)
  for prefix in _prefixes(flat):
    present = [e for e in expected if prefix + e in flat]
    fits = sum(tuple(np.shape(flat[prefix + e])) == tuple(expected[e]) for e in present)
    score = (len(present), fits)
    if score > best_score:
      best, best_score = prefix, score
    if fits == len(expected):
      return prefix
  missing = [e for e in expected if best + e not in flat]
  wrong = [(e, tuple(np.shape(flat[best + e])), tuple(expected[e])) for e in expected
           if best + e in flat and tuple(np.shape(flat[best + e])) != tuple(expected[e])]
  lines = [f'the parameters in the checkpoint do not fit the model (best match under '
           f'{_show(best)}: {len(expected) - len(missing) - len(wrong)} of {len(expected)} '
           'model parameters found with the right shape).']
  for e, have, want in wrong[:10]:
    lines.append(f'  {_show(e)}: checkpoint has shape {have}, the model expects {want}')
  for e in missing[:10]:
    lines.append(f'  {_show(e)}: missing from the checkpoint (model shape {expected[e]})')
  if len(wrong) + len(missing) > 20:
    lines.append(f'  ... {len(wrong) + len(missing) - 20} more')
  lines.append(fix)
  raise ConversionError(MISMATCH, '\n'.join(lines))


def _expected(tree: Any) -> dict[Path, tuple[int, ...]]:
  return {p: tuple(np.shape(l)) for p, l in flatten(tree).items()}


def _fill(template: Any, flat: Mapping[Path, Any], prefix: Path) -> Any:
  """`template` (a pytree of shapes) with each leaf replaced by the checkpoint's array."""
  def leaf(path, _):
    key = tuple(str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k)))) for k in path)
    return np.asarray(flat[prefix + key])
  return jax.tree_util.tree_map_with_path(leaf, template)


def _read_item(item_dir: pathlib.Path, where: str) -> dict[Path, Any]:
  """The float leaves of one item, all finite (`_check_finite`)."""
  return _check_finite(float_leaves(restore(item_dir)), where)


def _as_float(leaf: Any) -> np.ndarray:
  a = np.asarray(leaf)
  return a if a.dtype.kind == 'f' else a.astype(np.float32)  # bfloat16 and other ml_dtypes


def _check_finite(flat: dict[Path, Any], where: str) -> dict[Path, Any]:
  """`flat`, checked: finite values only.

  Raises:
    ConversionError(4): NaN or infinite values (overwritten bytes, or a diverged run), naming
      the arrays.
  """
  bad = [p for p, leaf in flat.items() if not np.isfinite(_as_float(leaf)).all()]
  if bad:
    raise ConversionError(NOT_CHECKPOINT, f'{where} holds NaN or infinite values in {len(bad)} '
                          f'of its {len(flat)} float arrays ({", ".join(map(_show, bad[:5]))}'
                          f'{", ..." if len(bad) > 5 else ""}): a corrupt file (overwritten '
                          'bytes) or parameters saved from a diverged training run. Save or '
                          'download it again, or convert another checkpoint.')
  return flat


# ---- models ---------------------------------------------------------------------------------


def _chain_prefix(flat: Mapping[Path, Any]) -> Path | None:
  """The first prefix whose children are all Dense/Conv layers (`kernel`, optional `bias`)."""
  for prefix in _prefixes(flat):
    layers: dict[str, set[Path]] = {}
    ok = True
    for p, leaf in flat.items():
      if p[:len(prefix)] != prefix or len(p) == len(prefix):
        continue
      rest = p[len(prefix):]
      if len(rest) != 2 or rest[1] not in ('kernel', 'bias'):
        ok = False
        break
      layers.setdefault(rest[0], set()).add(rest[1])
    if ok and layers and all('kernel' in v and np.ndim(flat[prefix + (k, 'kernel')]) >= 2
                             for k, v in layers.items()):
      return prefix
  return None


def _not_a_chain(flat: Mapping[Path, Any]) -> ConversionError:
  root = ('params',) if any(p[:1] == ('params',) for p in flat) else ()
  odd = sorted({_show(p[len(root):-1]) or _show(p) for p in flat if p[:len(root)] == root
                and p[-1] not in ('kernel', 'bias')})
  return ConversionError(
      UNSUPPORTED, 'without --model, gmn-convert reads plain chains of Dense/Conv layers '
      "({layer: {'kernel', 'bias'}}), but this checkpoint also holds "
      f'{odd[:8]}{" ..." if len(odd) > 8 else ""}. Pass the model code: --model '
      "package.module:ClassName --model-args '{...}' --input-shape 1,...")


def _params_view(flat: Mapping[Path, Any], prefix: Path) -> dict[str, dict[str, Any]]:
  params: dict[str, dict[str, Any]] = {}
  for p, leaf in flat.items():
    if p[:len(prefix)] == prefix and len(p) == len(prefix) + 2:
      params.setdefault(p[len(prefix)], {})[p[-1]] = np.asarray(leaf)
  return params


def convert_checkpoint(path: str | os.PathLike, model: Any = None, *,
                       model_args: Mapping[str, Any] | None = None,
                       inputs: Sequence[Any] = (), call_kwargs: Mapping[str, Any] | None = None,
                       step: int | None = None, all_steps: bool = False,
                       item: str | None = None, activation: str = 'relu',
                       padding: str = 'SAME', strides: int = 1,
                       spatial_shape: Sequence[int] | None = None,
                       order: Sequence[str] | None = None) -> Converted:
  """Reads an orbax checkpoint and converts its parameters to parameter graphs. Host-side.

  Args:
    path: a `CheckpointManager` directory, one step folder, one item folder, a
      `flax.serialization` msgpack file, or a transformers model directory (`config.json` +
      `flax_model.msgpack`; the model is the Flax class the config names, so leave `model`
      out).
    model: a linen/nnx module, module class, factory, or `'package.module:ClassName'`; None
      for a plain Dense/Conv chain (walked with `gmn_jax.from_params`) or a transformers
      directory.
    model_args: keyword arguments for the class or factory (nnx gets `rngs` automatically).
    inputs: example inputs (arrays, shapes, or `jax.ShapeDtypeStruct` values; batch size 1 is
      enough); needed with a model; optional for a transformers directory (default: 8 token
      ids, or an image or audio of the config's size).
    call_kwargs: keyword arguments held fixed when calling the model (e.g. `train=False`).
    step: the step of a `CheckpointManager` directory (default: the latest).
    all_steps: convert every step (one graph per step, one architecture traced once).
    item: the item of a step to read (default: the only one holding arrays).
    activation, padding, strides, spatial_shape, order: for a plain chain, as in
      `gmn_jax.from_params`.

  Returns:
    A `Converted` (graphs, steps, ParameterGraph; `.report()` summarises them).

  Raises:
    ConversionError: with `exit_code` as in `EXIT_CODES` and a message saying what to do.
  """
  from gmn_jax.graphs.from_params import from_params  # pylint: disable=g-import-not-at-top
  from gmn_jax.graphs.tracing import UnsupportedModelError, trace  # pylint: disable=g-import-not-at-top
  if is_transformers_dir(pathlib.Path(path).expanduser()):
    if model is not None or step is not None or all_steps or item is not None:
      raise ConversionError(USAGE, f'{path} is a transformers model directory: the model comes '
                            'from its config.json; leave out --model, --step, --all-steps and '
                            '--item.')
    return _convert_transformers(pathlib.Path(path).expanduser(), inputs)
  located = locate(path, step=step, all_steps=all_steps, item=item)
  call_kwargs = dict(call_kwargs or {})
  pg = module = prefix = expected_tree = None
  name = 'from_params'
  if model is not None:
    module = build_model(model, model_args)
    name = type(module).__name__
    inputs = example_inputs(inputs)
    if not inputs:
      raise ConversionError(USAGE, 'an example input is needed with a model: pass '
                            '--input-shape (e.g. 1,28,28,1; 1,16:int32 for token ids).')
  graphs, variables, n_float = [], None, 0
  for s, item_dir in located:
    where = f'{item_dir}' + (f' (step {s})' if s is not None else '')
    try:
      flat = _read_item(item_dir, where)
    except ConversionError as e:
      if s is not None and step is None and not all_steps:
        raise latest_unreadable(e, s, step_numbers(path)) from e
      raise
    if not flat:
      raise ConversionError(NO_PARAMETERS, f'{where} holds no floating-point arrays, so no '
                            'parameters. Point gmn-convert at the checkpoint (or --item) that '
                            'holds the model variables.')
    n_float = sum(int(np.size(l)) for l in flat.values())
    try:
      if module is None:
        if pg is None:
          prefix = _chain_prefix(flat)
          if prefix is None:
            raise _not_a_chain(flat)
        variables = _params_view(flat, prefix)
        if pg is None:
          try:
            pg = from_params(variables, activation=activation, padding=padding, strides=strides,
                             spatial_shape=spatial_shape, order=order)
          except (ValueError, UnsupportedModelError) as e:
            raise ConversionError(UNSUPPORTED, f'{e}\nPass --order, --spatial-shape or the '
                                  'model code (--model).') from e
      elif is_nnx_module(module):
        from flax import nnx  # pylint: disable=g-import-not-at-top
        state = nnx.state(module, (nnx.Param, nnx.BatchStat))
        pure = nnx.to_pure_dict(state)
        prefix = match(flat, _expected(pure))
        nnx.replace_by_pure_dict(state, _fill(pure, flat, prefix))
        nnx.update(module, state)
        variables = module
        if pg is None:
          try:
            pg = trace(module, *inputs, **call_kwargs)
          except (ValueError, TypeError, UnsupportedModelError) as e:
            raise model_failed(f'cannot trace {name}', e) from e
      else:
        if expected_tree is None:
          expected_tree = linen_template(module, inputs, call_kwargs)
        expected = _expected(expected_tree)
        views = [(expected_tree, expected)]
        if list(expected_tree) == ['params']:  # the item may hold the params collection alone
          views.append((expected_tree['params'], _expected(expected_tree['params'])))
        for i, (tree, want) in enumerate(views):
          try:
            prefix = match(flat, want)
          except ConversionError:
            if i == len(views) - 1:
              raise
            continue
          variables = _fill(tree, flat, prefix)
          if tree is not expected_tree:
            variables = {'params': variables}
          break
        if pg is None:
          try:
            pg = trace(module, variables, *inputs, **call_kwargs)
          except (ValueError, TypeError, UnsupportedModelError) as e:
            raise model_failed(f'cannot trace {name}', e) from e
      try:
        graphs.append(pg.encode(variables))
      except ValueError as e:  # a later step whose shapes differ from the traced one
        raise ConversionError(MISMATCH, f'{e} Every step must hold the same architecture.'
                              ) from e
    except ConversionError as e:
      if len(located) > 1:
        raise ConversionError(e.exit_code, f'step {s}: {e}') from e
      raise
  return Converted(pg=pg, graphs=graphs, steps=[s for s, _ in located], variables=variables,
                   items=[d for _, d in located], model=name, n_float=n_float,
                   prefix=_show(prefix) if prefix else '')



def _convert_transformers(path: pathlib.Path, inputs: Sequence[Any]) -> Converted:
  """A transformers model directory: its Flax class, its weights, traced as its wrapper calls it."""
  from gmn_jax.graphs.tracing import trace_function  # pylint: disable=g-import-not-at-top
  loaded = load_transformers_dir(path, inputs)
  flat = _check_finite(float_leaves(loaded.params), str(loaded.weights[0]))
  if not flat:
    raise ConversionError(NO_PARAMETERS, f'{loaded.weights[0]} holds no floating-point arrays, '
                          'so no parameters. Download the weights again.')
  expected = loaded.template['params']
  prefix = match(flat, _expected(expected), fix=(
      f'{path / "config.json"} does not describe these weights: the config and the weights come '
      'from different models, or the config was edited. Save the directory again '
      '(save_pretrained) or download both files from the same model.'))
  variables = {'params': _fill(expected, flat, prefix)}
  try:
    pg = trace_function(loaded.call, variables, *loaded.inputs)
  except Exception as e:  # pylint: disable=broad-except  (the tracer's errors, and the model's)
    raise model_failed(f'cannot trace {loaded.name}', e) from e
  return Converted(pg=pg, graphs=[pg.encode(variables)], steps=[None], variables=variables,
                   items=loaded.weights if len(loaded.weights) == 1 else [path],
                   model=loaded.name, n_float=sum(int(np.size(l)) for l in flat.values()),
                   prefix=_show(prefix) if prefix else '')

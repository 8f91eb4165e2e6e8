"""`trace` and `trace_function`: a Flax model, or any function of a parameter pytree, into its
`ParameterGraph`. Host-side; once per architecture."""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from jax._src.interpreters import partial_eval as pe

from gmn_jax.graphs.architecture import Architecture, NodeType, SharedUseError
from gmn_jax.graphs import verify
from gmn_jax.graphs.probe import ProbeProgram
from gmn_jax.graphs.symmetry import SymmetryError
from gmn_jax.graphs.tracing.call_forms import check_call_form
from gmn_jax.graphs.tracing.interpreter import Interpreter
from gmn_jax.graphs.tracing.values import (UnsupportedModelError, Param, Data, Index, Value,
                                           constant_along)


def _without_dead_code(closed):
  """The program without equations no output depends on (a pooled output never returned, a
  norm whose first result is dropped): they are not part of the function."""
  jaxpr, _ = pe.dce_jaxpr(closed.jaxpr, [True] * len(closed.jaxpr.outvars), instantiate=True)
  return jax.extend.core.ClosedJaxpr(jaxpr, closed.consts)


def _feature_axis(labels: np.ndarray) -> int:
  """The axis of an output along which its neurons vary: the last axis (Flax is channels-last)
  unless the neurons vary along exactly one other axis (a channels-first output, e.g.
  transformers' vision models transpose back to `[batch, channels, height, width]`)."""
  varying = [a for a in range(labels.ndim)
             if labels.shape[a] > 1 and not constant_along(labels, [a])]
  return varying[0] if len(varying) == 1 else labels.ndim - 1


def _mark_outputs(arch: Architecture, interpreter: Interpreter, outs: list[Value]) -> list[int]:
  """Makes the neurons along the feature axis (`_feature_axis`) of every activation output (a pytree of outputs:
  a ModelOutput, a tuple, a dict; in flattening order) output neurons, numbered across the
  outputs. Outputs that carry no neurons (integer arrays, attention weights, constants) are
  left out; an output whose neurons are all output neurons of an earlier one (a pooled output
  read from the last hidden state's neurons) adds none. Returns the indices of the outputs
  kept."""
  kept, offset = [], 0
  for i, out in enumerate(outs):
    if not isinstance(out, Data) or not interpreter.carries_neurons(out.labels):
      continue
    labels = np.asarray(out.labels)
    if labels.ndim == 0 or (labels < 0).any():
      raise UnsupportedModelError(f'model output {i} does not index neurons along one axis')
    axis = _feature_axis(labels)
    last = np.moveaxis(labels, axis, 0).reshape(labels.shape[axis], -1)
    if not (last == last[:, :1]).all() or len(np.unique(last[:, 0])) != labels.shape[axis]:
      raise UnsupportedModelError(f'model output {i} must hold one neuron per entry of one '
                                  'axis, the same at every batch/spatial position')
    act = arch.program_id(out.program)
    seen = [int(n) in arch.positions and arch.groups[int(arch.group_of(np.array([n]))[0])].kind
            != NodeType.INPUT for n in last[:, 0]]
    if all(seen):  # e.g. a pooled output computed from the last hidden state's neurons
      kept.append(i)  # (already output neurons, fixed by every symmetry; still verified)
      continue
    for j, n in enumerate(last[:, 0]):
      if arch.groups[int(arch.group_of(np.array([n]))[0])].kind == NodeType.INPUT:
        raise UnsupportedModelError('an output neuron is an input neuron (the model passes '
                                    'its input through unchanged)')
      if int(n) in arch.positions:
        raise UnsupportedModelError(f'model output {i} repeats neurons of an earlier output')
      arch.positions[int(n)] = offset + j
      arch.output_acts[int(n)] = act
    offset += labels.shape[axis]
    kept.append(i)
  if not kept:
    raise UnsupportedModelError(
        f'none of the {len(outs)} arrays the model returned holds neurons along one axis;'
        ' trace needs at least one activation output.')
  arch.output_act = arch.output_acts[int(np.asarray(outs[kept[0]].labels).ravel()[0])]
  return kept


def _is_nnx(model) -> bool:
  try:
    from flax import nnx  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  return isinstance(model, nnx.Module)


def trace(model, variables=None, *example_args, check_symmetries: int = 2, **example_kwargs):
  """Traces a Flax model into its `ParameterGraph`. Host-side; runs once per architecture.

  Linen: `trace(model, variables, *example_args, **example_kwargs)` where `variables` is what
  `model.init` returned (every collection in it becomes part of the graph, e.g. `params` and
  `batch_stats`) and the example arguments are what `model.apply` takes after the variables.
  Keyword arguments and non-array positional arguments (e.g. `train=False`) are held fixed.

  nnx: `trace(module, *example_args)`; the graph covers the module's `nnx.Param` and
  `nnx.BatchStat` state, and `encode` takes either the module or that state
  (`nnx.state(module, (nnx.Param, nnx.BatchStat))`).

  The last axis of each float input indexes its input neurons (Flax is channels-last; for
  channels-first and single-channel inputs see `trace_function`); an integer input holds token
  ids for an embedding. Batch size 1 is enough.

  Symmetry safety net: `check_symmetries` random symmetries (default 2) are drawn and the
  traced program is run on the original and the permuted parameters (also on a perturbed copy
  and on a copy at a generic weight scale, at random inputs); a symmetry that changes the
  output raises `SymmetryError` naming the neuron groups at fault, so a wrong augmentation
  can never pass silently. It costs one compilation and a few evaluations of the model
  (under a second for small models, seconds for a BERT-base). `check_symmetries=0` turns it
  off; `gmn_jax.graphs.check_symmetries` runs it later with other inputs or more draws.

  Returns:
    The `ParameterGraph`.

  Raises:
    UnsupportedModelError: the model computes something with no faithful graph; the message
      names the primitive, the Flax module path and the parameters involved.
    SymmetryError: (an `UnsupportedModelError`) a drawn symmetry changes the model's output.
    ValueError: a parameter is not finite, or linen variables lack their `params` collection.
    TypeError: the other call form: a linen model without its variables, or variables beside
      an nnx module.
  """
  check_call_form(model, variables, _is_nnx(model))
  if _is_nnx(model):
    from flax import nnx  # pylint: disable=g-import-not-at-top
    if variables is not None:
      example_args = (variables,) + example_args
    graphdef, state, rest = nnx.split(model, (nnx.Param, nnx.BatchStat), ...)
    variables = state

    def apply(v, *args):
      return nnx.merge(graphdef, v, rest)(*args, **example_kwargs)
    to_variables = lambda v: nnx.state(v, (nnx.Param, nnx.BatchStat)) if _is_nnx(v) else v
  else:

    def apply(v, *args):
      return model.apply(v, *args, **example_kwargs)
    to_variables = lambda v: v

  pg = trace_function(apply, variables, *example_args, check_symmetries=check_symmetries)
  pg.to_variables = to_variables
  return pg


def trace_function(apply, variables, *example_args, check_symmetries: int = 2):
  """Traces `apply(variables, *example_args)` (any function of a parameter pytree) into its
  `ParameterGraph`. `trace` and `from_params` are built on it. Host-side.

  `check_symmetries` random symmetries are checked against the traced program (see `trace`).
  The feature axis of a float input is its last axis; where that does not trace, axis 1 of
  every float input of rank >= 3 (channels-first, e.g. transformers' `pixel_values`), and then
  no axis (each float input is one channel at every position, e.g. a raw waveform
  `[batch, time]`). Where no reading traces, the error of the first is raised, with the
  others' errors appended.
  """
  floats = [np.ndim(a) for a in example_args if isinstance(a, (jax.Array, np.ndarray))
            and jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)]
  readings = ['last'] + (['channels-first'] if any(r >= 3 for r in floats) else []) + (
      ['one channel'] if any(r >= 2 for r in floats) else [])
  errors = []
  for reading in readings:
    try:
      return _trace(apply, variables, example_args, check_symmetries, reading)
    except SymmetryError:
      raise
    except UnsupportedModelError as e:
      errors.append(e)
  # each different error once: a reading that fails the same way adds nothing to read
  first = {}
  for reading, e in zip(readings, errors):
    first.setdefault(str(e), reading)
  if len(first) == 1:
    raise errors[0]
  raise UnsupportedModelError('\n'.join(
      [str(errors[0])] + [f'(read with the float inputs\' feature axis {reading}: {text})'
                          for text, reading in list(first.items())[1:]])) from None


def _trace(apply, variables, example_args, check_symmetries: int, reading: str):
  from gmn_jax.graphs.parameter_graph import ParameterGraph  # pylint: disable=g-import-not-at-top
  path_leaves, treedef = jax.tree_util.tree_flatten_with_path(variables)
  paths = [jax.tree_util.keystr(p) for p, _ in path_leaves]
  leaves = [jnp.asarray(l) for _, l in path_leaves]
  for path, leaf in zip(paths, leaves):
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
      raise ValueError(f'variable {path} has dtype {leaf.dtype}; only float parameters can '
                       'be graph features. Leave counters and other state out of `variables`.')
    if not np.isfinite(np.asarray(leaf)).all():
      raise ValueError(f'parameter {path} contains NaN or infinite values.')

  is_array = [isinstance(a, (jax.Array, np.ndarray)) for a in example_args]
  arrays = [a for a, keep in zip(example_args, is_array) if keep]

  def fn(leaves, *arrays):
    it = iter(arrays)
    args = [next(it) if keep else a for a, keep in zip(example_args, is_array)]
    return jax.tree_util.tree_leaves(apply(jax.tree_util.tree_unflatten(treedef, leaves), *args))

  closed = _without_dead_code(jax.make_jaxpr(fn)(leaves, *arrays))
  arch = Architecture(paths, [tuple(l.shape) for l in leaves])
  inputs: list[Value] = []
  for i, leaf in enumerate(leaves):
    offset = int(arch.leaf_offsets[i])
    inputs.append(Param((offset + np.arange(leaf.size).reshape(leaf.shape),), 'θ'))
  for i, a in enumerate(arrays):
    a = jnp.asarray(a)
    if jnp.issubdtype(a.dtype, jnp.integer) or jnp.issubdtype(a.dtype, jnp.bool_):
      inputs.append(Index('tokens'))
      continue
    if a.ndim == 0:
      raise UnsupportedModelError(f'example argument {i} is a scalar; inputs need a feature axis')
    axis = {'last': a.ndim - 1, 'channels-first': 1 if a.ndim >= 3 else a.ndim - 1,
            'one channel': None}[reading]
    group = arch.add_group(f'input{i}', 1 if axis is None else a.shape[axis], 0,
                           NodeType.INPUT)
    for j, n in enumerate(group.ids):
      arch.positions[int(n)] = j
    ids = group.ids.reshape([-1 if d == axis else 1 for d in range(a.ndim)])
    inputs.append(Data(np.broadcast_to(ids, a.shape), ''))
  interpreter = Interpreter(arch)
  outs = interpreter.run(closed.jaxpr, list(closed.consts), inputs)
  kept = _mark_outputs(arch, interpreter, outs)
  arch.hold_unplaced()
  try:
    arch.tie_shared_uses()
  except SharedUseError as e:
    raise UnsupportedModelError(str(e)) from None
  closed = jax.extend.core.ClosedJaxpr(
      closed.jaxpr.replace(outvars=[closed.jaxpr.outvars[i] for i in kept]), closed.consts)
  labels = np.asarray(outs[kept[0]].labels)
  arch.settle_positions()
  program = ProbeProgram(closed, interpreter.probe_points, labels,
                         tuple(tuple(np.shape(a)) for a in arrays), arch.n_neurons)
  pg = ParameterGraph(arch, treedef, [l.dtype for l in leaves], program)
  try:
    verify.check_symmetries(pg, variables, arrays, draws=check_symmetries)
  except SymmetryError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (never a bare crash from the net)
    raise SymmetryError(f'drawing or checking a symmetry failed ({type(e).__name__}: {e}); '
                        'no symmetry of this model can be trusted.') from e
  return pg

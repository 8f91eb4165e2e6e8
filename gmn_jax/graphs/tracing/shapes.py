"""Shape movement: reshapes, transposes, slices, concatenations and gathers carry labels and
parameter indices exactly as they carry values. Host-side."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gmn_jax.graphs.tracing.values import (Const, Param, Data, Index, Value, SLICING, take0,
                                           constant_along)


class ShapeRules:
  """Interprets pure data-movement primitives (a mixin of `Interpreter`)."""

  def shape_op(self, eqn, ins: list[Value]) -> list[Value]:
    """Moves labels / parameter indices through a pure data-movement primitive."""
    name = eqn.primitive.name
    joins = name in ('concatenate', 'stack')  # every operand is moved data
    kinds = {type(v) for v in ins} if joins else {type(v) for v in ins[:1]}
    kinds.discard(Const)
    if kinds == {Index} or (not joins and isinstance(ins[0], Index)):
      index = next(v for v in ins if isinstance(v, Index))
      return [Index(index.program) for _ in eqn.outvars]
    if joins and kinds == {Param, Data}:
      return [self.parameter_tokens(eqn, ins)]
    if (name in ('gather', 'dynamic_slice') and isinstance(ins[0], Data)
        and any(isinstance(v, Index) for v in ins[1:])
        and all(isinstance(v, (Index, Const)) for v in ins[1:])):
      return [self.select_positions(eqn, ins)]
    if len(kinds) != 1 or any(isinstance(v, (Data, Param, Index)) for v in ins[1:]
                              if not joins):
      raise self.fail('data movement whose index operands depend on the input or parameters',
                      eqn)
    kind = kinds.pop()
    if kind is Data:
      if joins and any(isinstance(v, Data) and v.pending for v in ins):
        raise self.fail('concatenation of statistics that carry parameters', eqn)
      arrays = [[v.labels, *v.pending] if isinstance(v, Data) else [np.full(np.shape(v.value), -1)]
                for v in ins]
    else:
      n_terms = max(len(v.terms) for v in ins if isinstance(v, Param))
      if joins and any(isinstance(v, Param) and len(v.terms) != n_terms
                                       for v in ins):
        raise self.fail('concatenation of parameters built from different numbers of leaves',
                        eqn)
      arrays = [list(v.terms) if isinstance(v, Param)
                else [np.full(np.shape(v.value), -1)] * n_terms for v in ins]
    n_arrays = len(arrays[0])
    results = []  # per output: list of arrays
    for t in range(n_arrays):
      operands = [a[t] if t < len(a) else a[0] for a in arrays]
      moved = self.move(eqn, operands, ins)
      results.append(moved)
    outs = []
    for o in range(len(eqn.outvars)):
      per_term = [results[t][o] for t in range(n_arrays)]
      if kind is Data:
        program = next(v.program for v in ins if isinstance(v, Data))
        outs.append(Data(per_term[0], program, tuple(per_term[1:])))
        if name in SLICING:
          self.record_segments(ins[0].labels, per_term[0])
      else:
        program = next(v.program for v in ins if isinstance(v, Param))
        outs.append(Param(tuple(per_term), program))
    return outs

  def parameter_tokens(self, eqn, ins: list[Value]) -> Data:
    """A class / distillation / register token (a parameter vector) concatenated onto a
    sequence of activations: its entries attach to the neurons of the feature axis they
    line up with, like a position embedding."""
    axis = eqn.params['dimension' if eqn.primitive.name == 'concatenate' else 'axis']
    data = [v for v in ins if isinstance(v, Data)]
    if eqn.primitive.name != 'concatenate' or any(v.pending for v in data):
      raise self.fail('parameters stacked with activations', eqn)
    row = take0(np.asarray(data[0].labels), [axis])
    if not all(constant_along(v.labels, [axis]) and np.array_equal(
        np.broadcast_to(take0(np.asarray(v.labels), [axis]), row.shape), row) for v in data):
      raise self.fail('a concatenation of activations whose neurons differ', eqn)
    parts, tokens = [], []
    for v, var in zip(ins, eqn.invars):
      shape = tuple(var.aval.shape)
      labels = np.broadcast_to(row, shape)
      if isinstance(v, Param):
        tokens.append(self.attach(eqn, v, labels, shape))
      elif isinstance(v, Const):
        labels = np.full(shape, -1)
      parts.append(labels)
    return Data(np.concatenate(parts, axis=axis),
                f'{data[0].program};tokens({",".join(tokens)})')

  def select_positions(self, eqn, ins: list[Value]) -> Data:
    """Positions picked by integer inputs (CLIP's pooled output reads the hidden state at each
    sequence's end-of-text token): allowed where the neurons are the same at every position
    the indices choose among, so which positions are picked does not change the labels."""
    x = ins[0]
    if eqn.primitive.name == 'gather':
      axes = list(eqn.params['dimension_numbers'].start_index_map)
    else:
      axes = [a for a, v in enumerate(ins[1:]) if isinstance(v, Index)]
    if not all(constant_along(a, axes) for a in (x.labels, *x.pending)):
      raise self.fail('neurons picked by integer inputs (a gather along the feature axis by '
                      'token ids or positions)', eqn)
    rest = [Const(np.zeros(var.aval.shape, var.aval.dtype)) if isinstance(v, Index) else v
            for v, var in zip(ins[1:], eqn.invars[1:])]
    moved = [self.move(eqn, [a], [x, *rest])[0] for a in (x.labels, *x.pending)]
    return Data(moved[0], f'{x.program};{eqn.primitive.name}[by integer inputs]',
                tuple(moved[1:]))

  def move(self, eqn, operands: list[np.ndarray], ins: list[Value]) -> list[np.ndarray]:
    name, p = eqn.primitive.name, eqn.params
    x = operands[0]
    if name == 'reshape':
      return [np.reshape(x, p['new_sizes'])]
    if name == 'transpose':
      return [np.transpose(x, p['permutation'])]
    if name == 'broadcast_in_dim':
      shape = [1] * len(p['shape'])
      for i, d in enumerate(p['broadcast_dimensions']):
        shape[d] = x.shape[i]
      return [np.broadcast_to(np.reshape(x, shape), p['shape'])]
    if name == 'squeeze':
      return [np.squeeze(x, axis=tuple(p['dimensions']))]
    if name == 'expand_dims':
      return [np.expand_dims(x, tuple(p['dimensions']))]
    if name == 'tile':
      return [np.tile(x, p['reps'])]
    if name == 'rev':
      return [np.flip(x, axis=tuple(p['dimensions']))]
    if name == 'slice':
      strides = p['strides'] or (1,) * x.ndim
      index = tuple(slice(s, e, st) for s, e, st in
                    zip(p['start_indices'], p['limit_indices'], strides))
      return [x[index]]
    if name == 'concatenate':
      return [np.concatenate(operands, axis=p['dimension'])]
    if name == 'stack':
      return [np.stack(operands, axis=p['axis'])]
    if name == 'pad':
      config = p['padding_config']
      if any(interior for _, _, interior in config) or any(lo < 0 or hi < 0 for lo, hi, _ in config):
        raise self.fail('interior or negative padding', eqn)
      return [np.pad(x, [(lo, hi) for lo, hi, _ in config], constant_values=-1)]
    if name == 'split':
      bounds = np.cumsum(p['sizes'])[:-1]
      return list(np.split(x, bounds, axis=p['axis']))
    if name in ('dynamic_slice', 'gather', 'dynamic_update_slice', 'select_and_gather_add'):
      rest = [jnp.asarray(v.value) for v in ins[1:]]
      params = dict(p)
      if name == 'gather':
        params['fill_value'] = -1
      out = eqn.primitive.bind(jnp.asarray(x, jnp.int32), *rest, **params)
      return [np.asarray(out).astype(np.int64)]
    raise self.fail('unsupported primitive (no graph rule for it)', eqn)

  def record_segments(self, before: np.ndarray, after: np.ndarray):
    """Slicing part of a neuron group makes the kept neurons an orbit of their own."""
    kept = np.unique(after[after >= 0])
    if kept.size == 0:
      return
    groups = self.arch.group_of(kept)
    for g in np.unique(groups):
      members = kept[groups == g]
      if members.size < self.arch.groups[g].size:
        self.arch.segments.append(members)

"""Tracing a Flax model's jaxpr into an Architecture.

Host-side (numpy, data-dependent shapes, never under jit). Every value of the model's jaxpr is
interpreted as one of four kinds:

- `Const`: known numbers (literals, closed-over constants, `iota`), evaluated eagerly.
- `Param`: a function of the parameters alone. It carries, for each of its elements, the flat
  index of the parameter scalar it comes from (one index array per contributing leaf).
- `Data`: a function of the network input. It carries, for each element, the id of the neuron
  it belongs to (-1 when it belongs to none, e.g. a LayerNorm statistic), and the program of
  elementwise operations applied since that neuron group was made.
- `Index`: integer token ids derived from an integer input (what embeddings look up).

Label arrays go through shape operations exactly as the values do, so reshapes, transposes,
flattening and head splits need no rules of their own. Contractions of `Data` with a `Param`
make a new neuron group and its edges; `Param` combined elementwise with `Data` attaches to the
neurons it meets (biases, scales, running statistics); two different neuron groups added or
multiplied make a residual join. Anything else is an error naming the primitive, the Flax
module path and the parameters involved.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gmn_jax._src import architecture as arch_lib
from gmn_jax._src.architecture import Architecture, EdgeType, NodeType, OpKind
from gmn_jax._src.probe import PointKey, ProbeProgram, subjaxpr


class UnsupportedModelError(ValueError):
  """The model computes something the parameter graph cannot represent faithfully."""


@dataclasses.dataclass
class Const:
  value: np.ndarray


@dataclasses.dataclass
class Param:
  terms: tuple[np.ndarray, ...]  # each: flat parameter index per element, -1 where none
  program: str  # elementwise function of the terms, 'θ' standing for a term


@dataclasses.dataclass
class Data:
  labels: np.ndarray  # neuron id per element, -1 where none
  program: str
  # Parameters met by a statistic (e.g. LayerNorm's `rsqrt(var) * scale`), waiting for the
  # neurons they will act on: each entry is one term's flat indices, shaped like `labels`.
  pending: tuple[np.ndarray, ...] = ()


@dataclasses.dataclass
class Index:
  program: str


Value = Const | Param | Data | Index

_UNARY = {
    'neg', 'exp', 'exp2', 'log', 'log1p', 'expm1', 'tanh', 'logistic', 'sin', 'cos', 'tan',
    'asin', 'acos', 'atan', 'sinh', 'cosh', 'asinh', 'acosh', 'atanh', 'sqrt', 'rsqrt', 'cbrt',
    'abs', 'sign', 'floor', 'ceil', 'round', 'erf', 'erfc', 'erf_inv', 'integer_pow', 'square',
    'convert_element_type', 'reduce_precision', 'is_finite', 'not', 'real', 'imag', 'lgamma',
    'digamma', 'population_count',
}
_NARY = {
    'add', 'add_any', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'atan2', 'rem', 'nextafter',
    'select_n', 'clamp', 'eq', 'ne', 'lt', 'gt', 'le', 'ge', 'and', 'or', 'xor',
}
_IDENTITY = {'stop_gradient', 'copy', 'copy_p', 'optimization_barrier', 'sharding_constraint',
             'pvary', 'mesh_cast', 'reshard'}
_REDUCTIONS = {'reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod', 'reduce_and',
               'reduce_or', 'argmax', 'argmin'}
_WINDOWED = {'reduce_window_sum', 'reduce_window_max', 'reduce_window_min', 'reduce_window',
             'cumsum', 'cumprod', 'cummax', 'cummin', 'cumlogsumexp'}
_SLICING = {'slice', 'dynamic_slice', 'gather', 'split'}
_JOIN_EDGE = {'add': (EdgeType.RESIDUAL, EdgeType.RESIDUAL),
              'add_any': (EdgeType.RESIDUAL, EdgeType.RESIDUAL),
              'sub': (EdgeType.RESIDUAL, EdgeType.RESIDUAL_NEG),
              'mul': (EdgeType.PRODUCT, EdgeType.PRODUCT)}


def _describe_const(value: np.ndarray) -> str:
  value = np.asarray(value)
  if value.size == 1:
    return f'{value.reshape(()).item():.6g}'
  return f'arr{value.shape}#{arch_lib.digest(value.tobytes().hex())}'


def _params_text(params: dict[str, Any]) -> str:
  keep = {k: v for k, v in params.items()
          if k in ('y', 'axes', 'new_dtype', 'dimension', 'axis', 'window_dimensions',
                   'window_strides', 'padding', 'reverse')}
  return ','.join(f'{k}={v}' for k, v in sorted(keep.items()))


def _take0(labels: np.ndarray, axes: Sequence[int]) -> np.ndarray:
  """labels with every axis in `axes` reduced to its first entry (kept, size 1)."""
  index = tuple(slice(0, 1) if a in axes else slice(None) for a in range(labels.ndim))
  return labels[index]


def _shrink(arrays: Sequence[np.ndarray], shape) -> list[np.ndarray]:
  """The arrays (broadcast to `shape`) reduced to one entry along every axis where all of them
  are constant: same pairs of values, far fewer elements (spatial axes drop out)."""
  arrays = [np.broadcast_to(a, shape) for a in arrays]
  for axis in range(len(shape)):
    if shape[axis] > 1 and all(a.strides[axis] == 0 or _constant_along(a, [axis])
                               for a in arrays):
      arrays = [_take0(a, [axis]) for a in arrays]
  return arrays


def _as_mean(main: Data, ins: list[Value], name: str) -> str | None:
  """`reduce_sum` over positions followed by division by their count, as one `mean` token."""
  head, sep, count = main.program.rpartition('#n')
  if (name != 'div' or not sep or ins[0] is not main or not isinstance(ins[1], Const)
      or np.size(ins[1].value) != 1 or float(np.ravel(ins[1].value)[0]) != float(count)):
    return None
  start = head.rfind(';reduce_sum[')
  return head[:start] + ';mean[' + head[start + len(';reduce_sum['):] if start >= 0 else None


def _constant_along(labels: np.ndarray, axes: Sequence[int]) -> bool:
  if not axes:
    return True
  return bool(np.array_equal(np.broadcast_to(_take0(labels, axes), labels.shape), labels))


class _Interpreter:
  """Walks a jaxpr, building the Architecture as it goes."""

  def __init__(self, arch: Architecture):
    self.arch = arch
    self.attach_count: dict[int, int] = {}
    self.where = ''
    self.path: tuple[int, ...] = ()  # ids of the equations whose jaxprs enclose this one
    self.probe_points: dict[PointKey, tuple[int, np.ndarray]] = {}

  # ---- errors -------------------------------------------------------------------------------

  def fail(self, what: str, eqn=None, param: Param | None = None) -> UnsupportedModelError:
    parts = [what]
    if eqn is not None:
      parts.append(f'primitive `{eqn.primitive.name}`')
    if self.where:
      parts.append(f'Flax module `{self.where}`')
    if param is not None:
      parts.append('parameters ' + ', '.join(self.param_paths(param)))
    return UnsupportedModelError(' | '.join(parts))

  def group_name(self, param: Param) -> str:
    """The Flax module path, or (nnx traces carry none) the weight's parameter path."""
    if self.where:
      return self.where
    path = self.param_paths(param)[0] if self.param_paths(param) else ''
    return path.removesuffix('.value').rsplit('[', 1)[0].replace("']['", '/').strip("[]'")

  def param_paths(self, param: Param) -> list[str]:
    paths = []
    for term in param.terms:
      flat = term[term >= 0]
      if flat.size:
        paths.append(self.arch.leaf_paths[self.arch.leaf_of(int(flat.ravel()[0]))])
    return paths

  # ---- driver -------------------------------------------------------------------------------

  def run(self, jaxpr, consts: list[Any], inputs: list[Value], prefix: str = '') -> list[Value]:
    """Interprets `jaxpr`; `prefix` is the module path of the equation that called it (name
    stacks inside a nested jaxpr are relative to it)."""
    env: dict[Any, Value] = {}

    def read(atom) -> Value:
      if hasattr(atom, 'val'):  # Literal
        return Const(np.asarray(atom.val))
      return env[atom]

    for var, const in zip(jaxpr.constvars, consts):
      env[var] = Const(np.asarray(const))
    for var, value in zip(jaxpr.invars, inputs):
      env[var] = value
    for eqn in jaxpr.eqns:
      own = str(eqn.source_info.name_stack)
      self.where = '/'.join(p for p in (prefix, own) if p)
      ins = [read(a) for a in eqn.invars]
      outs = self.equation(eqn, ins)
      for var, out in zip(eqn.outvars, outs):
        env[var] = out
    return [read(a) for a in jaxpr.outvars]

  def equation(self, eqn, ins: list[Value]) -> list[Value]:
    name = eqn.primitive.name
    sub = subjaxpr(eqn)
    if sub is not None:
      where, path = self.where, self.path
      self.path = path + (id(eqn),)
      outs = self.run(sub[0], sub[1], ins, prefix=where)
      self.where, self.path = where, path
      return outs
    if all(isinstance(v, Const) for v in ins):
      return self.evaluate(eqn, ins)
    if name in _IDENTITY:
      return list(ins[:len(eqn.outvars)])
    if name in _UNARY or name in _NARY:
      return [self.elementwise(eqn, ins)]
    if name == 'dot_general':
      return [self.dot_general(eqn, ins)]
    if name == 'conv_general_dilated':
      return [self.conv(eqn, ins)]
    if name in _REDUCTIONS:
      return [self.reduction(eqn, ins[0])]
    if name in _WINDOWED:
      return [self.windowed(eqn, ins)]
    if name == 'gather' and isinstance(ins[0], Param) and isinstance(ins[1], Index):
      return [self.embedding(eqn, ins[0], ins[1])]
    return self.shape_op(eqn, ins)

  def evaluate(self, eqn, ins: list[Const]) -> list[Value]:
    outs = eqn.primitive.bind(*[jnp.asarray(v.value) for v in ins], **eqn.params)
    outs = outs if eqn.primitive.multiple_results else [outs]
    return [Const(np.asarray(o)) for o in outs]

  # ---- shape operations ---------------------------------------------------------------------

  def shape_op(self, eqn, ins: list[Value]) -> list[Value]:
    """Moves labels / parameter indices through a pure data-movement primitive."""
    name = eqn.primitive.name
    kinds = {type(v) for v in ins[:1]} if name != 'concatenate' else {type(v) for v in ins}
    kinds.discard(Const)
    if kinds == {Index} or (name not in ('concatenate',) and isinstance(ins[0], Index)):
      return [Index(ins[0].program) for _ in eqn.outvars]
    if len(kinds) != 1 or any(isinstance(v, (Data, Param, Index)) for v in ins[1:]
                              if name != 'concatenate'):
      raise self.fail('data movement whose index operands depend on the input or parameters',
                      eqn)
    kind = kinds.pop()
    if kind is Data:
      if name == 'concatenate' and any(isinstance(v, Data) and v.pending for v in ins):
        raise self.fail('concatenation of statistics that carry parameters', eqn)
      arrays = [[v.labels, *v.pending] if isinstance(v, Data) else [np.full(np.shape(v.value), -1)]
                for v in ins]
    else:
      n_terms = max(len(v.terms) for v in ins if isinstance(v, Param))
      if name == 'concatenate' and any(isinstance(v, Param) and len(v.terms) != n_terms
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
        if name in _SLICING:
          self.record_segments(ins[0].labels, per_term[0])
      else:
        program = next(v.program for v in ins if isinstance(v, Param))
        outs.append(Param(tuple(per_term), program))
    return outs

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
    if name == 'rev':
      return [np.flip(x, axis=tuple(p['dimensions']))]
    if name == 'slice':
      strides = p['strides'] or (1,) * x.ndim
      index = tuple(slice(s, e, st) for s, e, st in
                    zip(p['start_indices'], p['limit_indices'], strides))
      return [x[index]]
    if name == 'concatenate':
      return [np.concatenate(operands, axis=p['dimension'])]
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

  # ---- elementwise --------------------------------------------------------------------------

  def elementwise(self, eqn, ins: list[Value]) -> Value:
    name = eqn.primitive.name
    shape = tuple(eqn.outvars[0].aval.shape)
    op = name + (f'[{_params_text(eqn.params)}]' if eqn.params else '')
    if name == 'convert_element_type' and jnp.issubdtype(eqn.params['new_dtype'], jnp.floating):
      op = None  # a float cast does not change the function
    if any(isinstance(v, Index) for v in ins):
      if any(isinstance(v, (Data, Param)) for v in ins):
        raise self.fail('integer token ids mixed with activations or parameters', eqn)
      return ins[0] if op is None else Index(f'{ins[0].program};{op}')
    data = [v for v in ins if isinstance(v, Data)]
    if not data:
      return self.param_elementwise(eqn, ins, op)
    labelled = []
    for v in data:
      labels = np.broadcast_to(v.labels, shape)
      if self.carries_neurons(labels) and not any(np.array_equal(labels, l) for _, l in labelled):
        labelled.append((v, labels))
    if len(labelled) == 2:
      if any(isinstance(v, Param) or (isinstance(v, Data) and v.pending) for v in ins):
        raise self.fail('a join of two neuron groups that also involves parameters', eqn)
      return self.join(eqn, labelled)
    if len(labelled) > 2:
      raise self.fail('an elementwise operation of more than two neuron groups', eqn)
    if not labelled:
      return self.statistic(eqn, ins, op, shape)
    main, labels = labelled[0]
    if op is None:
      return Data(labels, main.program)
    mean = _as_mean(main, ins, name)
    if mean is not None:  # sum over positions / their count: independent of the input size
      return Data(labels, mean)
    args = []
    for v in ins:
      if v is main:
        args.append('_')
      elif isinstance(v, Const):
        args.append(_describe_const(v.value))
      elif isinstance(v, Data):
        args.append(f'd{arch_lib.digest(v.program)}')
        if v.pending:
          args[-1] += self.attach(eqn, Param(v.pending, v.program), labels, shape)
      else:
        args.append(self.attach(eqn, v, labels, shape))
    return Data(labels, f'{main.program};{op}({",".join(args)})')

  def statistic(self, eqn, ins: list[Value], op: str | None, shape) -> Data:
    """Elementwise math on values that carry no neurons (statistics, attention weights)."""
    data = [v for v in ins if isinstance(v, Data)]
    labels = next((np.broadcast_to(v.labels, shape) for v in data if (v.labels >= 0).any()),
                  np.broadcast_to(np.int64(-1), shape))
    pending, args = [], []
    for v in ins:
      if isinstance(v, Const):
        args.append(_describe_const(v.value))
      elif isinstance(v, Data):
        args.append(f'd{arch_lib.digest(v.program)}')
        pending.extend(np.broadcast_to(t, shape) for t in v.pending)
      else:
        args.append(f'θ{v.program}')
        pending.extend(np.broadcast_to(t, shape) for t in v.terms)
    if op is None:
      return Data(labels, data[0].program, tuple(pending))
    return Data(labels, f'{op}({",".join(args)})', tuple(pending))

  def param_elementwise(self, eqn, ins: list[Value], op: str | None) -> Param:
    shape = tuple(eqn.outvars[0].aval.shape)
    terms, args = [], []
    for v in ins:
      if isinstance(v, Param):
        terms.extend(np.broadcast_to(t, shape) for t in v.terms)
        args.append(v.program)
      else:
        args.append(_describe_const(v.value))
    if op is None:
      return Param(tuple(terms), args[0])
    return Param(tuple(terms), f'{op}({",".join(args)})')

  def attach(self, eqn, param: Param, labels: np.ndarray, shape) -> str:
    """Attaches a parameter operand to the neurons it meets; returns its program token."""
    neurons_all, flats_all = [], []
    for term in param.terms:
      term, labels = _shrink([term, labels], shape)
      valid = term >= 0
      flat, neurons = term[valid], labels[valid]
      if (neurons < 0).any():
        raise self.fail('a parameter combined with a value that carries no neurons', eqn, param)
      key = np.unique(np.stack([flat, neurons], 1), axis=0)
      if len(np.unique(key[:, 0])) != len(key):
        raise self.fail('a parameter element that acts on several neurons (a shared scalar or '
                        'a parameter broadcast over neurons) is not supported', eqn, param)
      neurons_all.append(key[:, 1])
      flats_all.append(key[:, 0])
    neurons, flats = np.concatenate(neurons_all), np.concatenate(flats_all)
    self.arch.attach(neurons, flats)
    self.record_segments(labels, neurons)
    group = int(self.arch.group_of(neurons[:1])[0])
    k = self.attach_count.get(group, 0)
    self.attach_count[group] = k + 1
    return f'p{k}[{param.program}]'

  def join(self, eqn, labelled: list[tuple[Data, np.ndarray]]) -> Data:
    """Two different neuron groups meet elementwise: a residual join (or a gate)."""
    name = eqn.primitive.name
    if name not in _JOIN_EDGE:
      raise self.fail(f'`{name}` of two different neuron groups', eqn)
    (a, la), (b, lb) = labelled
    shape = la.shape
    la, lb = _shrink([la, lb], shape)
    if ((la >= 0) != (lb >= 0)).any():
      raise self.fail('a join of neuron groups that do not line up element for element', eqn)
    valid = la >= 0
    pairs, inverse = np.unique(np.stack([la[valid], lb[valid]], 1), axis=0, return_inverse=True)
    if len(np.unique(pairs[:, 0])) != len(pairs) or len(np.unique(pairs[:, 1])) != len(pairs):
      raise self.fail('a join where one neuron meets several neurons of the other group', eqn)
    group = self.arch.add_group(self.where, len(pairs), self.arch.depth_of(pairs.ravel()))
    labels = np.full(la.shape, -1, np.int64)
    labels[valid] = group.start + inverse.ravel()
    labels = np.broadcast_to(labels, shape)
    kind_a, kind_b = _JOIN_EDGE[name]
    ids = group.ids
    self.arch.add_free_edges(pairs[:, 0], ids, kind_a, self.arch.program_id(a.program))
    self.arch.add_free_edges(pairs[:, 1], ids, kind_b, self.arch.program_id(b.program))
    self.arch.ties += [(pairs[:, 0], ids), (pairs[:, 1], ids)]
    return Data(labels, '')

  # ---- reductions ---------------------------------------------------------------------------

  def reduction(self, eqn, x: Value) -> Value:
    name, axes = eqn.primitive.name, tuple(eqn.params['axes'])
    if isinstance(x, Param):
      raise self.fail('a reduction over parameters (e.g. weight standardisation)', eqn, x)
    if isinstance(x, Index):
      return Index(f'{x.program};{name}')
    if x.pending:
      raise self.fail('a reduction of a statistic that carries parameters', eqn)
    op = f'{name}[{_params_text(eqn.params)}]'
    if _constant_along(x.labels, axes):
      labels = np.squeeze(_take0(x.labels, axes), axis=axes)
      count = int(np.prod([x.labels.shape[a] for a in axes]))
      return Data(labels, f'{x.program};{op}#n{count}')
    if name.startswith('arg'):
      raise self.fail('an arg-reduction over neurons (its result depends on neuron order)', eqn)
    shape = tuple(eqn.outvars[0].aval.shape)
    program = f'{op}(d{arch_lib.digest(x.program)})'
    kept = [a for a in range(x.labels.ndim) if a not in axes]
    if _constant_along(x.labels, kept):
      return Data(np.broadcast_to(np.int64(-1), shape), program)
    return Data(self.blocks(eqn, x.labels, kept, axes, shape), program)

  def blocks(self, eqn, labels: np.ndarray, kept, axes, shape) -> np.ndarray:
    """A reduction over part of the neurons (GroupNorm): one BLOCK node per reduced set."""
    rows = np.transpose(labels, list(kept) + list(axes)).reshape(
        int(np.prod([labels.shape[a] for a in kept])), -1)
    if (rows < 0).any():
      raise self.fail('a reduction over neurons and positions that carry none', eqn)
    sets, inverse = np.unique(np.sort(rows, axis=1), axis=0, return_inverse=True)
    members = [np.unique(r) for r in sets]
    if len(np.unique(np.concatenate(members))) != sum(len(m) for m in members):
      raise self.fail('a reduction over overlapping sets of neurons', eqn)
    group = self.arch.add_group(self.where + '/blocks', len(sets),
                                self.arch.depth_of(labels) + 1, NodeType.BLOCK)
    block_of = np.concatenate([np.full(len(m), group.start + k) for k, m in enumerate(members)])
    self.arch.add_free_edges(np.concatenate(members), block_of, EdgeType.BLOCK)
    self.arch.block_ties.append([[np.array([n]) for n in group.ids], members])
    return (group.start + inverse.ravel()).reshape(shape)

  def windowed(self, eqn, ins: list[Value]) -> Value:
    x = ins[0]
    if not isinstance(x, Data):
      raise self.fail('a windowed reduction over parameters', eqn)
    shape = tuple(eqn.outvars[0].aval.shape)
    if 'window_dimensions' in eqn.params:
      axes = [a for a, w in enumerate(eqn.params['window_dimensions'])
              if w != 1 or eqn.params['window_strides'][a] != 1 or x.labels.shape[a] != shape[a]]
    else:
      axes = [eqn.params['axis']]
    if not _constant_along(x.labels, axes):
      raise self.fail('pooling or scanning across neurons', eqn)
    labels = np.broadcast_to(_take0(x.labels, axes), shape)
    return Data(labels, f'{x.program};{eqn.primitive.name}[{_params_text(eqn.params)}]')

  # ---- contractions -------------------------------------------------------------------------

  def dot_general(self, eqn, ins: list[Value]) -> Value:
    lhs, rhs = ins
    kinds = (type(lhs), type(rhs))
    if kinds == (Data, Param):
      return self.dense(eqn, lhs, rhs, data_is_lhs=True)
    if kinds == (Param, Data):
      return self.dense(eqn, rhs, lhs, data_is_lhs=False)
    if kinds == (Data, Data):
      return self.interaction(eqn, lhs, rhs)
    if Param in kinds and Const not in kinds:
      raise self.fail('a contraction between parameters (e.g. a low-rank factorisation)', eqn)
    data = lhs if isinstance(lhs, Data) else rhs
    if isinstance(data, Data):
      return self.const_contraction(eqn, lhs, rhs)
    raise self.fail('a contraction of parameters with constants', eqn,
                    lhs if isinstance(lhs, Param) else rhs)

  def const_contraction(self, eqn, lhs: Value, rhs: Value) -> Data:
    """Data contracted with a constant over axes that carry no neurons (e.g. a fixed pooling)."""
    (lc, rc), (lb, rb) = eqn.params['dimension_numbers']
    data_is_lhs = isinstance(lhs, Data)
    data, const = (lhs, rhs) if data_is_lhs else (rhs, lhs)
    dc, db = (lc, lb) if data_is_lhs else (rc, rb)
    labels = np.asarray(data.labels)
    if not _constant_along(labels, dc):
      raise self.fail('a contraction of neurons with a constant matrix (a parameter-free '
                      'mixing of neurons) is not supported', eqn)
    dfree = [a for a in range(labels.ndim) if a not in dc and a not in db]
    kept = np.transpose(labels, list(db) + dfree + list(dc))[(Ellipsis,) + (0,) * len(dc)]
    n_cfree = np.ndim(const.value) - len(dc) - len(db)
    if data_is_lhs:  # output axes: batch, data free, constant free
      kept = kept.reshape(kept.shape + (1,) * n_cfree)
    else:  # output axes: batch, constant free, data free
      kept = np.expand_dims(kept, tuple(range(len(db), len(db) + n_cfree)))
    shape = tuple(eqn.outvars[0].aval.shape)
    op = f'contract_const({_describe_const(const.value)})'
    return Data(np.broadcast_to(kept, shape), f'{data.program};{op}')

  def _reduce_free(self, eqn, labels: np.ndarray, batch, contract) -> np.ndarray:
    """Labels on (batch..., contract...) axes, after checking they do not vary elsewhere."""
    free = [a for a in range(labels.ndim) if a not in batch and a not in contract]
    if not _constant_along(labels, free):
      raise self.fail('contracted neurons that differ across batch or spatial positions', eqn)
    reduced = np.transpose(labels, list(batch) + list(contract) + free)
    return reduced[(Ellipsis,) + (0,) * len(free)]

  def dense(self, eqn, data: Data, param: Param, data_is_lhs: bool) -> Data:
    (lc, rc), (lb, rb) = eqn.params['dimension_numbers']
    dc, pc, db, pb = (lc, rc, lb, rb) if data_is_lhs else (rc, lc, rb, lb)
    if len(param.terms) != 1:
      raise self.fail('a contraction weight computed from several parameter leaves', eqn, param)
    src = self._reduce_free(eqn, np.asarray(data.labels), db, dc)  # [b..., c...]
    self.read_point(eqn, 0 if data_is_lhs else 1, data)
    n_pdims = param.terms[0].ndim
    pfree = [a for a in range(n_pdims) if a not in pc and a not in pb]
    weight = np.transpose(param.terms[0], list(pb) + list(pc) + pfree)  # [b..., c..., f...]
    nb, nc = len(pb), len(pc)
    bshape, fshape = weight.shape[:nb], weight.shape[nb + nc:]
    n_out = int(np.prod(bshape + fshape, dtype=np.int64))
    group = self.arch.add_group(self.group_name(param), n_out, self.arch.depth_of(src) + 1)
    out_ids = group.start + np.arange(n_out).reshape(bshape + fshape)
    dst = np.expand_dims(out_ids, tuple(range(nb, nb + nc)))
    src = src.reshape(src.shape + (1,) * len(fshape))
    src, dst = np.broadcast_to(src, weight.shape), np.broadcast_to(dst, weight.shape)
    self.add_weight_edges(eqn, param, src, dst, weight,
                          self.arch.op_id(arch_lib.describe_op(OpKind.DENSE)), data.program)
    shape = tuple(eqn.outvars[0].aval.shape)
    n_dfree = data.labels.ndim - len(dc) - len(db)
    if data_is_lhs:  # output axes: batch, data free, param free
      labels = np.expand_dims(out_ids, tuple(range(nb, nb + n_dfree)))
    else:  # output axes: batch, param free, data free
      labels = out_ids.reshape(out_ids.shape + (1,) * n_dfree)
    return Data(np.broadcast_to(labels, shape), '')

  def read_point(self, eqn, operand: int, data: Data):
    """Probe features read `data`'s neurons where this contraction takes them in."""
    self.probe_points[(self.path, id(eqn))] = (operand, np.asarray(data.labels))

  def add_weight_edges(self, eqn, param, src, dst, weight, op, program: str):
    valid = weight >= 0
    if (src[valid] < 0).any():
      raise self.fail('a weight that reads a value carrying no neurons (e.g. zero padding '
                      'along the feature axis)', eqn, param)
    self.arch.add_weight_edges(src[valid], dst[valid], weight[valid], EdgeType.WEIGHT, op,
                               self.arch.program_id(program))

  def conv(self, eqn, ins: list[Value]) -> Data:
    x, w = ins
    p = eqn.params
    if not (isinstance(x, Data) and isinstance(w, Param)):
      raise self.fail('a convolution whose input is not an activation or whose kernel is not '
                      'a parameter', eqn)
    if p['batch_group_count'] != 1:
      raise self.fail('batch_group_count != 1', eqn, w)
    if len(w.terms) != 1:
      raise self.fail('a convolution kernel computed from several parameter leaves', eqn, w)
    lhs_spec, rhs_spec, out_spec = p['dimension_numbers']
    feature = lhs_spec[1]
    others = [a for a in range(x.labels.ndim) if a != feature]
    if not _constant_along(x.labels, others):
      raise self.fail('convolution input whose channels differ across positions', eqn, w)
    channels = np.moveaxis(x.labels, feature, -1)[(0,) * len(others)]  # [C]
    self.read_point(eqn, 0, x)
    # [I, O, spatial...]: sender-major, so the edges come out already sorted
    kernel = np.transpose(w.terms[0], (rhs_spec[1], rhs_spec[0]) + tuple(rhs_spec[2:]))
    n_in, n_out = kernel.shape[:2]
    groups = p['feature_group_count']
    per_group = n_out // groups
    in_index = np.arange(n_in)[:, None] + (np.arange(n_out) // per_group)[None, :] * n_in
    group = self.arch.add_group(self.group_name(w), n_out, self.arch.depth_of(channels) + 1)
    spatial = (1,) * (kernel.ndim - 2)
    src = np.broadcast_to(channels[in_index].reshape((n_in, n_out) + spatial), kernel.shape)
    dst = np.broadcast_to(group.ids.reshape((1, n_out) + spatial), kernel.shape)
    op = self.arch.op_id(arch_lib.describe_op(
        OpKind.CONV, groups, kernel.shape[2:], p['window_strides'], p['rhs_dilation'],
        p['lhs_dilation'], p['padding']))
    self.add_weight_edges(eqn, w, src, dst, kernel, op, x.program)
    if groups > 1:
      n_in_total = channels.shape[0]
      in_blocks = [channels[g * n_in:(g + 1) * n_in] for g in range(groups)]
      out_blocks = [group.ids[g * per_group:(g + 1) * per_group] for g in range(groups)]
      if n_in * groups != n_in_total:
        raise self.fail('grouped convolution whose groups do not cover the input', eqn, w)
      self.arch.block_ties.append([in_blocks, out_blocks])
    shape = tuple(eqn.outvars[0].aval.shape)
    labels = np.broadcast_to(group.ids.reshape([-1 if a == out_spec[1] else 1
                                                for a in range(len(shape))]), shape)
    return Data(labels, '')

  def embedding(self, eqn, table: Param, tokens: Index) -> Data:
    """`table[tokens]`: a Dense layer from one-hot vocabulary input neurons."""
    dn = eqn.params['dimension_numbers']
    term = table.terms[0]
    if (len(table.terms) != 1 or term.ndim != 2 or tuple(dn.collapsed_slice_dims) != (0,)
        or tuple(dn.start_index_map) != (0,) or tuple(eqn.params['slice_sizes'])[1] != term.shape[1]):
      raise self.fail('a gather from parameters other than an embedding lookup '
                      '`table[tokens]` of a [vocabulary, features] table', eqn, table)
    vocab, features = term.shape
    inputs = self.arch.add_group(self.where + '/vocabulary', vocab, 0, NodeType.INPUT)
    for i, n in enumerate(inputs.ids):
      self.arch.positions[int(n)] = i
    group = self.arch.add_group(self.where, features, 1)
    src = np.broadcast_to(inputs.ids[:, None], term.shape)
    dst = np.broadcast_to(group.ids[None, :], term.shape)
    self.add_weight_edges(eqn, table, src, dst, term, self.arch.op_id(arch_lib.describe_op(OpKind.EMBED)),
                          tokens.program)
    shape = tuple(eqn.outvars[0].aval.shape)
    offset = dn.offset_dims
    labels = group.ids.reshape([-1 if a == offset[-1] else 1 for a in range(len(shape))])
    return Data(np.broadcast_to(labels, shape), '')

  def carries_neurons(self, labels: np.ndarray, axes=None) -> bool:
    """Whether `labels` index hidden/input neurons (not heads), along `axes` if given."""
    labels = np.asarray(labels)
    valid = labels >= 0
    if labels.size == 0 or not valid.any():
      return False
    first = int(labels[valid].ravel()[0])
    kind = self.arch.groups[int(self.arch.group_of(np.array([first]))[0])].kind
    if kind in (NodeType.HEAD, NodeType.BLOCK):
      return False
    if axes is None:
      return True
    if not axes or not valid.all():
      return False
    extent = int(np.prod([labels.shape[a] for a in axes]))
    return extent == 1 or not _constant_along(labels, list(axes))

  def interaction(self, eqn, lhs: Data, rhs: Data) -> Data:
    """Activation times activation: attention logits (Q·K) or attention-weighted values."""
    (lc, rc), (lb, rb) = eqn.params['dimension_numbers']
    shape = tuple(eqn.outvars[0].aval.shape)
    l_contract, r_contract = self.carries_neurons(lhs.labels, lc), self.carries_neurons(rhs.labels, rc)
    if l_contract and r_contract:
      return self.query_key(eqn, lhs, rhs, shape)
    if l_contract or r_contract:
      raise self.fail('a product of two activations that contracts the neurons of only one',
                      eqn)
    l_values, r_values = self.carries_neurons(lhs.labels), self.carries_neurons(rhs.labels)
    if l_values and r_values:
      raise self.fail('an outer product of two neuron groups', eqn)
    if not l_values and not r_values:
      program = f'product(d{arch_lib.digest(lhs.program)},d{arch_lib.digest(rhs.program)})'
      return Data(np.broadcast_to(np.int64(-1), shape), program)
    if l_values:
      return self.attend(eqn, rhs, lhs, True, shape)
    return self.attend(eqn, lhs, rhs, False, shape)

  def query_key(self, eqn, q: Data, k: Data, shape) -> Data:
    (lc, rc), (lb, rb) = eqn.params['dimension_numbers']
    q0 = self._reduce_free(eqn, np.asarray(q.labels), lb, lc)
    k0 = self._reduce_free(eqn, np.asarray(k.labels), rb, rc)
    if (q0 < 0).any() or (k0 < 0).any():
      raise self.fail('a contraction of activations over partly unlabelled axes', eqn)
    self.arch.add_free_edges(q0.ravel(), k0.ravel(), EdgeType.QUERY_KEY)
    self.arch.ties.append((q0.ravel(), k0.ravel()))
    program = f'qk(d{arch_lib.digest(q.program)},d{arch_lib.digest(k.program)})'
    head_axes = [i for i in range(len(lb)) if not _constant_along(q0, [i])]
    if not head_axes:
      return Data(np.broadcast_to(np.int64(-1), shape), program)
    head_shape = tuple(q0.shape[i] for i in head_axes)
    n_heads = int(np.prod(head_shape))
    heads = self.arch.add_group(self.where + '/heads', n_heads,
                                self.arch.depth_of(q0) + 1, NodeType.HEAD)
    head_of = np.broadcast_to(
        heads.start + np.arange(n_heads).reshape([q0.shape[i] if i in head_axes else 1
                                                  for i in range(len(lb))]
                                                 + [1] * len(lc)), q0.shape)
    self.arch.add_free_edges(q0.ravel(), head_of.ravel(), EdgeType.HEAD_QUERY,
                             self.arch.program_id(q.program))
    self.arch.add_free_edges(k0.ravel(), head_of.ravel(), EdgeType.HEAD_KEY,
                             self.arch.program_id(k.program))
    q_blocks = [np.unique(q0[head_of == h]) for h in heads.ids]
    k_blocks = [np.unique(k0[head_of == h]) for h in heads.ids]
    self.arch.block_ties.append([[np.array([h]) for h in heads.ids], q_blocks, k_blocks])
    labels = head_of[(Ellipsis,) + (0,) * len(lc)]  # [batch...]
    labels = labels.reshape(labels.shape + (1,) * (len(shape) - labels.ndim))
    return Data(np.broadcast_to(labels, shape), program)

  def attend(self, eqn, weights: Data, values: Data, values_is_lhs: bool, shape) -> Data:
    (lc, rc), (lb, rb) = eqn.params['dimension_numbers']
    wc, vc, wb, vb = (rc, lc, rb, lb) if values_is_lhs else (lc, rc, lb, rb)
    v_labels = np.asarray(values.labels)
    if not _constant_along(v_labels, vc):
      raise self.fail('attention that averages across neurons', eqn)
    vfree = [a for a in range(v_labels.ndim) if a not in vc and a not in vb]
    v0 = np.transpose(v_labels, list(vb) + vfree + list(vc))[(Ellipsis,) + (0,) * len(vc)]
    n_wfree = weights.labels.ndim - len(wc) - len(wb)
    nb = len(vb)
    if values_is_lhs:  # output: batch, values free, weights free
      labels = v0.reshape(v0.shape + (1,) * n_wfree)
    else:  # output: batch, weights free, values free
      labels = np.expand_dims(v0, tuple(range(nb, nb + n_wfree)))
    program = f'{values.program};attend(d{arch_lib.digest(weights.program)})'
    w_labels = np.asarray(weights.labels)
    if (w_labels >= 0).any():
      w0 = self._reduce_free(eqn, w_labels, wb, [])  # heads along batch axes
      heads = np.broadcast_to(w0.reshape(w0.shape + (1,) * len(vfree)), v0.shape)
      if (heads < 0).any():
        raise self.fail('attention weights that only partly belong to heads', eqn)
      self.arch.add_free_edges(heads.ravel(), v0.ravel(), EdgeType.HEAD_VALUE,
                               self.arch.program_id(weights.program))
      head_ids = np.unique(heads)
      self.arch.block_ties.append([[np.array([h]) for h in head_ids],
                                   [np.unique(v0[heads == h]) for h in head_ids]])
    return Data(np.broadcast_to(labels, shape), program)


def _is_nnx(model) -> bool:
  try:
    from flax import nnx  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  return isinstance(model, nnx.Module)


def trace(model, variables=None, *example_args, **example_kwargs):
  """Traces a Flax model into its `ParameterGraph`. Host-side; runs once per architecture.

  Linen: `trace(model, variables, *example_args, **example_kwargs)` where `variables` is what
  `model.init` returned (every collection in it becomes part of the graph, e.g. `params` and
  `batch_stats`) and the example arguments are what `model.apply` takes after the variables.
  Keyword arguments and non-array positional arguments (e.g. `train=False`) are held fixed.

  nnx: `trace(module, *example_args)`; the graph covers the module's `nnx.Param` and
  `nnx.BatchStat` state, and `encode` takes either the module or that state
  (`nnx.state(module, (nnx.Param, nnx.BatchStat))`).

  The last axis of each float input indexes its input neurons (Flax is channels-last); an
  integer input holds token ids for an embedding. Batch size 1 is enough.

  Returns:
    The `ParameterGraph`.

  Raises:
    UnsupportedModelError: the model computes something with no faithful graph; the message
      names the primitive, the Flax module path and the parameters involved.
    ValueError: a parameter is not finite, unused, or used twice.
  """
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
    if variables is None:
      raise TypeError('trace(model, variables, *example_args): linen models need the '
                      'variables returned by model.init.')

    def apply(v, *args):
      return model.apply(v, *args, **example_kwargs)
    to_variables = lambda v: v

  pg = trace_function(apply, variables, *example_args)
  pg.to_variables = to_variables
  return pg


def trace_function(apply, variables, *example_args):
  """Traces `apply(variables, *example_args)` (any function of a parameter pytree) into its
  `ParameterGraph`. `trace` and `from_params` are built on it. Host-side."""
  from gmn_jax._src.graph import ParameterGraph  # pylint: disable=g-import-not-at-top
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
    return apply(jax.tree_util.tree_unflatten(treedef, leaves), *args)

  closed = jax.make_jaxpr(fn)(leaves, *arrays)
  arch = Architecture(paths, [tuple(l.shape) for l in leaves])
  inputs: list[Value] = []
  for i, leaf in enumerate(leaves):
    offset = int(arch.leaf_offsets[i])
    inputs.append(Param((offset + np.arange(leaf.size).reshape(leaf.shape),), 'θ'))
  for i, a in enumerate(arrays):
    a = jnp.asarray(a)
    if jnp.issubdtype(a.dtype, jnp.integer):
      inputs.append(Index('tokens'))
      continue
    if a.ndim == 0:
      raise UnsupportedModelError(f'example argument {i} is a scalar; inputs need a feature axis')
    group = arch.add_group(f'input{i}', a.shape[-1], 0, NodeType.INPUT)
    for j, n in enumerate(group.ids):
      arch.positions[int(n)] = j
    inputs.append(Data(np.broadcast_to(group.ids, a.shape), ''))
  interpreter = _Interpreter(arch)
  outs = interpreter.run(closed.jaxpr, list(closed.consts), inputs)
  if len(outs) != 1 or not isinstance(outs[0], Data):
    raise UnsupportedModelError(
        f'the model returned {len(outs)} arrays; trace needs one activation array as output '
        '(wrap the model to return only the prediction).')
  out = outs[0]
  labels = np.asarray(out.labels)
  if labels.ndim == 0 or (labels < 0).any():
    raise UnsupportedModelError('the model output does not index neurons along its last axis')
  last = np.moveaxis(labels, -1, 0).reshape(labels.shape[-1], -1)
  if not (last == last[:, :1]).all() or len(np.unique(last[:, 0])) != labels.shape[-1]:
    raise UnsupportedModelError('the model output must hold one neuron per entry of its last '
                                'axis, the same at every batch/spatial position')
  for j, n in enumerate(last[:, 0]):
    if n in arch.positions and arch.groups[int(arch.group_of(np.array([n]))[0])].kind == NodeType.INPUT:
      raise UnsupportedModelError('an output neuron is an input neuron (the model passes its '
                                  'input through unchanged)')
    arch.positions[int(n)] = j
  arch.output_act = arch.program_id(out.program)
  program = ProbeProgram(closed, interpreter.probe_points, labels,
                         tuple(tuple(np.shape(a)) for a in arrays), arch.n_neurons)
  return ParameterGraph(arch, treedef, [l.dtype for l in leaves], program)

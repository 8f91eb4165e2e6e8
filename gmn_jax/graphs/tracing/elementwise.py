"""Elementwise programs, parameters attached to neurons, residual joins and reductions.
Host-side."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gmn_jax.graphs import architecture as arch_lib
from gmn_jax.graphs.architecture import EdgeType, NodeType
from gmn_jax.graphs.tracing.values import (Const, Param, Data, Index, Table, Value, JOIN_EDGE,
                                           describe_const, params_text, take0, shrink, as_mean,
                                           constant_along)


def table_token(table: Table) -> str:
  """A program token for a table operand: its program and the layout of its keys."""
  return f'{table.program}#{arch_lib.digest(np.asarray(table.keys).tobytes().hex())}'


class ElementwiseRules:
  """Interprets elementwise primitives, joins and reductions (a mixin of `Interpreter`)."""

  def elementwise(self, eqn, ins: list[Value]) -> Value:
    name = eqn.primitive.name
    shape = tuple(eqn.outvars[0].aval.shape)
    op = name + (f'[{params_text(eqn.params)}]' if eqn.params else '')
    if name == 'convert_element_type' and jnp.issubdtype(eqn.params['new_dtype'], jnp.floating):
      op = None  # a float cast does not change the function
    if any(isinstance(v, Index) for v in ins):
      if any(isinstance(v, Param) for v in ins):
        raise self.fail('integer token ids mixed with parameters', eqn)
      if any(isinstance(v, Table) for v in ins):
        raise self.fail('a constant table read at data-chosen rows combined with integer '
                        'inputs', eqn)
      if not any(isinstance(v, Data) for v in ins):
        index = next(v for v in ins if isinstance(v, Index))
        return index if op is None else Index(f'{index.program};{op}')
      # A value computed from integer inputs alone (an attention or padding mask, position
      # buckets) meets activations: it is data, but no neuron.
      ins = [Data(np.broadcast_to(np.int64(-1), tuple(var.aval.shape)), f'int:{v.program}')
             if isinstance(v, Index) else v for v, var in zip(ins, eqn.invars)]
    data = [v for v in ins if isinstance(v, Data)]
    if not data and any(isinstance(v, Table) for v in ins):
      if any(isinstance(v, Param) for v in ins):
        raise self.fail('parameters combined with a constant table read at data-chosen rows',
                        eqn, next(v for v in ins if isinstance(v, Param)))
      return self.table_elementwise(eqn, ins, op)
    if not data:
      return self.param_elementwise(eqn, ins, op)
    labelled = []
    for v in data:
      labels = np.broadcast_to(v.labels, shape)
      if self.carries_neurons(labels) and not any(np.array_equal(labels, l) for _, l in labelled):
        labelled.append((v, labels))
    if len(labelled) == 1 and name in ('add', 'add_any'):
      heads = [v for v in data if v is not labelled[0][0] and self.labels_heads(v.labels)]
      if heads:
        return self.head_bias(eqn, heads[0], labelled[0], shape)
    if len(labelled) == 2:
      if any(isinstance(v, Param) or (isinstance(v, Data) and v.pending) for v in ins):
        raise self.fail('a join of two neuron groups that also involves parameters', eqn)
      return self.join(eqn, labelled)
    if len(labelled) > 2:
      raise self.fail('an elementwise operation of more than two neuron groups', eqn)
    if not labelled:
      return self.statistic(eqn, ins, op, shape)
    main, labels = labelled[0]
    self.distinguish_by_constants(ins, labels, shape)
    if op is None:
      return Data(labels, main.program)
    mean = as_mean(main, ins, name)
    if mean is not None:  # sum over positions / their count: independent of the input size
      return Data(labels, mean)
    args = []
    for v in ins:
      if v is main:
        args.append('_')
      elif isinstance(v, Const):
        args.append(describe_const(v.value))
      elif isinstance(v, Table):
        args.append(table_token(v))
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
    self.distinguish_by_constants(ins, labels, shape)
    pending, args = [], []
    for v in ins:
      if isinstance(v, Const):
        args.append(describe_const(v.value))
      elif isinstance(v, Table):
        args.append(table_token(v))
      elif isinstance(v, Data):
        args.append(f'd{arch_lib.digest(v.program)}')
        pending.extend(np.broadcast_to(t, shape) for t in v.pending)
      else:
        args.append(f'θ{v.program}')
        pending.extend(np.broadcast_to(t, shape) for t in v.terms)
    if op is None:
      return Data(labels, data[0].program, tuple(pending))
    return Data(labels, f'{op}({",".join(args)})', tuple(pending))

  def distinguish_by_constants(self, ins: list[Value], labels: np.ndarray, shape):
    """A constant that differs between neurons (or heads) tells them apart: rotary
    frequencies per dimension, ALiBi slopes per head. Neurons whose constants differ (compared
    position by position) become orbits of their own, so no symmetry swaps them. A `Table`
    (a constant read at data-chosen rows) counts by the identity of the columns it reads."""
    for v in ins:
      if isinstance(v, Const) and np.size(v.value) > 1:
        self.distinguish_by(np.asarray(v.value), labels, shape)
      elif isinstance(v, Table):
        self.distinguish_by(v.keys, labels, shape)

  def distinguish_by(self, values: np.ndarray, labels: np.ndarray, shape):
    """Neurons of `labels` that meet different `values` (both broadcast to `shape`, compared
    position by position) are told apart (see `distinguish_by_constants`)."""
    lab, val = shrink([labels, values], shape)
    lab, val = np.broadcast_arrays(lab, val)
    valid = lab >= 0
    if not valid.any():
      return
    order = np.argsort(lab[valid], kind='stable')  # each label's values in position order
    ids, starts, counts = np.unique(lab[valid][order], return_index=True, return_counts=True)
    values = val[valid][order]
    if (counts == counts[0]).all():  # class ids ranked by value: independent of neuron order
      _, classes = np.unique(values.reshape(len(ids), counts[0]), axis=0, return_inverse=True)
    else:
      rows = [tuple(values[s:s + c]) for s, c in zip(starts, counts)]
      rank = {row: k for k, row in enumerate(sorted(set(rows)))}
      classes = np.array([rank[row] for row in rows])
    classes = np.ravel(classes)
    if classes.max(initial=0) == 0:
      return
    for c in np.unique(classes):
      self.record_segments(ids, ids[classes == c])
    self.arch.distinguish(ids, classes)

  def param_elementwise(self, eqn, ins: list[Value], op: str | None) -> Param:
    shape = tuple(eqn.outvars[0].aval.shape)
    terms, args = [], []
    for v in ins:
      if isinstance(v, Param):
        terms.extend(np.broadcast_to(t, shape) for t in v.terms)
        args.append(v.program)
      else:
        args.append(describe_const(v.value))
    if op is None:
      return Param(tuple(terms), args[0])
    return Param(tuple(terms), f'{op}({",".join(args)})')

  def attach(self, eqn, param: Param, labels: np.ndarray, shape) -> str:
    """Attaches a parameter operand to the neurons it meets; returns its program token."""
    neurons_all, flats_all = [], []
    for term in param.terms:
      term, labels = shrink([term, labels], shape)
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

  def labels_heads(self, labels: np.ndarray) -> bool:
    """Whether `labels` index attention heads (attention logits or weights)."""
    labels = np.asarray(labels)
    valid = labels[labels >= 0]
    if valid.size == 0:
      return False
    return self.arch.groups[int(self.arch.group_of(valid.ravel()[:1])[0])].kind == NodeType.HEAD

  def head_bias(self, eqn, logits: Data, bias: tuple[Data, np.ndarray], shape) -> Data:
    """Neurons added to attention logits, one per head (T5's learned relative position bias,
    looked up from a [buckets, heads] table): each feeds its head by a RESIDUAL edge and is
    tied to it, so the head permutation moves the bias columns too (and, where one bias
    serves every layer, the heads of all those layers alike)."""
    data, labels = bias
    if data.pending or logits.pending:
      raise self.fail('a bias on attention logits that also involves parameters', eqn)
    heads, neurons = shrink([np.broadcast_to(logits.labels, shape), labels], shape)
    heads, neurons = np.broadcast_arrays(heads, neurons)
    if ((heads >= 0) != (neurons >= 0)).any():
      raise self.fail('a bias on attention logits that does not line up with the heads', eqn)
    valid = heads >= 0
    pairs = np.unique(np.stack([neurons[valid], heads[valid]], 1), axis=0)
    if len(np.unique(pairs[:, 0])) != len(pairs) or len(np.unique(pairs[:, 1])) != len(pairs):
      raise self.fail('a bias on attention logits that is not one neuron per head', eqn)
    self.arch.add_free_edges(pairs[:, 0], pairs[:, 1], EdgeType.RESIDUAL,
                             self.arch.program_id(data.program))
    self.arch.ties.append((pairs[:, 0], pairs[:, 1]))
    program = f'{logits.program};add(d{arch_lib.digest(data.program)})'
    return Data(np.broadcast_to(logits.labels, shape), program)

  def join(self, eqn, labelled: list[tuple[Data, np.ndarray]]) -> Data:
    """Two different neuron groups meet elementwise: a residual join (or a gate)."""
    name = eqn.primitive.name
    if name not in JOIN_EDGE:
      raise self.fail(f'`{name}` of two different neuron groups', eqn)
    (a, la), (b, lb) = labelled
    shape = la.shape
    la, lb = shrink([la, lb], shape)
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
    kind_a, kind_b = JOIN_EDGE[name]
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
    op = f'{name}[{params_text(eqn.params)}]'
    if constant_along(x.labels, axes):
      labels = np.squeeze(take0(x.labels, axes), axis=axes)
      count = int(np.prod([x.labels.shape[a] for a in axes]))
      return Data(labels, f'{x.program};{op}#n{count}')
    if name.startswith('arg'):
      raise self.fail('an arg-reduction over neurons (its result depends on neuron order)', eqn)
    shape = tuple(eqn.outvars[0].aval.shape)
    program = f'{op}(d{arch_lib.digest(x.program)})'
    kept = [a for a in range(x.labels.ndim) if a not in axes]
    if constant_along(x.labels, kept):
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
    if isinstance(x, Index):  # e.g. position ids counted along a padding mask (`cumsum`)
      return Index(f'{x.program};{eqn.primitive.name}[{params_text(eqn.params)}]')
    if not isinstance(x, Data):
      raise self.fail('a windowed reduction over parameters', eqn)
    shape = tuple(eqn.outvars[0].aval.shape)
    if 'window_dimensions' in eqn.params:
      axes = [a for a, w in enumerate(eqn.params['window_dimensions'])
              if w != 1 or eqn.params['window_strides'][a] != 1 or x.labels.shape[a] != shape[a]]
    else:
      axes = [eqn.params['axis']]
    if not constant_along(x.labels, axes):
      raise self.fail('pooling or scanning across neurons', eqn)
    labels = np.broadcast_to(take0(x.labels, axes), shape)
    return Data(labels, f'{x.program};{eqn.primitive.name}[{params_text(eqn.params)}]')

"""Contractions: Dense and convolution edges, embeddings, attention. Host-side."""

from __future__ import annotations

import numpy as np

from gmn_jax.graphs import architecture as arch_lib
from gmn_jax.graphs.architecture import EdgeType, NodeType, OpKind
from gmn_jax.graphs.tracing.elementwise import table_token
from gmn_jax.graphs.tracing.values import (Const, Param, Data, Index, Table, Value, describe_const,
                                           constant_along, fold_padding)


class ContractionRules:
  """Interprets `dot_general`, convolutions and embedding lookups (a mixin of `Interpreter`)."""

  def dot_general(self, eqn, ins: list[Value]) -> Value:
    lhs, rhs = ins
    kinds = (type(lhs), type(rhs))
    if kinds == (Data, Param):
      return self.dense(eqn, lhs, rhs, data_is_lhs=True)
    if kinds == (Param, Data):
      return self.dense(eqn, rhs, lhs, data_is_lhs=False)
    if kinds == (Data, Data):
      return self.interaction(eqn, lhs, rhs)
    if Index in kinds and Data not in kinds and Param not in kinds and Table not in kinds:
      # integer inputs alone (BigBird's block mask `einsum('blq,blk->blqk', mask, mask)`)
      index = lhs if isinstance(lhs, Index) else rhs
      return Index(f'{index.program};dot_general')
    if Index in kinds:
      raise self.fail('a contraction of integer inputs with activations or parameters', eqn)
    if Param in kinds and Const not in kinds:
      raise self.fail('a contraction between parameters (e.g. a low-rank factorisation)', eqn)
    data = lhs if isinstance(lhs, Data) else rhs
    if isinstance(data, Data):
      return self.const_contraction(eqn, lhs, rhs)
    if Table in kinds:
      raise self.fail('a contraction of a constant table read at data-chosen rows with '
                      'something other than activations', eqn)
    raise self.fail('a contraction of parameters with constants', eqn,
                    lhs if isinstance(lhs, Param) else rhs)

  def const_contraction(self, eqn, lhs: Value, rhs: Value) -> Data:
    """Data contracted with a constant over axes that carry no neurons (e.g. a fixed pooling)."""
    (lc, rc), (lb, rb) = eqn.params['dimension_numbers']
    data_is_lhs = isinstance(lhs, Data)
    data, const = (lhs, rhs) if data_is_lhs else (rhs, lhs)
    dc, db = (lc, lb) if data_is_lhs else (rc, rb)
    labels = np.asarray(data.labels)
    if not constant_along(labels, dc):
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
    labels = np.broadcast_to(kept, shape)
    # Without contracting neurons this is still an elementwise product along the batch axes
    # (RoFormer's rotary `einsum('bslh,...sh->bslh')`): the constant tells neurons apart.
    cc, cb = (rc, rb) if data_is_lhs else (lc, lb)
    values = const.value if isinstance(const, Const) else const.keys
    self.distinguish_by(self.contraction_view(values, cb, cc, dfree, data_is_lhs),
                        labels[..., None], shape + (int(np.prod(
                            [np.shape(values)[a] for a in cc], dtype=np.int64)),))
    token = describe_const(const.value) if isinstance(const, Const) else table_token(const)
    return Data(labels, f'{data.program};contract_const({token})')

  @staticmethod
  def contraction_view(values: np.ndarray, batch, contract, dfree, data_is_lhs: bool):
    """The constant operand of a contraction laid out like its output, with one trailing axis
    for the contracted entries: `[batch..., (free...)..., contracted]`, size 1 along the data's
    free axes."""
    values = np.asarray(values)
    cfree = [a for a in range(values.ndim) if a not in batch and a not in contract]
    view = np.transpose(values, list(batch) + cfree + list(contract))
    lead = view.shape[:len(batch)]
    mid = view.shape[len(batch):len(batch) + len(cfree)]
    ones = (1,) * len(dfree)
    return view.reshape(lead + (ones + mid if data_is_lhs else mid + ones) + (-1,))

  def _reduce_free(self, eqn, labels: np.ndarray, batch, contract) -> np.ndarray:
    """Labels on (batch..., contract...) axes, after checking they do not vary elsewhere."""
    free = [a for a in range(labels.ndim) if a not in batch and a not in contract]
    folded = fold_padding(labels, free)  # zero-padded positions contribute nothing
    if folded is None:
      raise self.fail('contracted neurons that differ across batch or spatial positions', eqn)
    reduced = np.transpose(folded, list(batch) + list(contract) + free)
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
    if not constant_along(x.labels, others):
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

  def is_table_lookup(self, eqn, table: Value) -> bool:
    """Whether a gather reads whole rows of a [vocabulary, features] parameter table."""
    if not isinstance(table, Param) or len(table.terms) != 1 or table.terms[0].ndim != 2:
      return False
    dn = eqn.params['dimension_numbers']
    return (tuple(dn.collapsed_slice_dims) == (0,) and tuple(dn.start_index_map) == (0,)
            and tuple(eqn.params['slice_sizes'])[1] == table.terms[0].shape[1])

  def embedding(self, eqn, table: Param, tokens: Index) -> Data:
    """`table[tokens]`: a Dense layer from one-hot vocabulary input neurons."""
    dn = eqn.params['dimension_numbers']
    term = table.terms[0]
    if not self.is_table_lookup(eqn, table):
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
    if not axes:
      return False
    if not constant_along(valid, list(axes)):  # zero-padded positions hold no neuron at all
      return False
    extent = int(np.prod([labels.shape[a] for a in axes]))
    return extent == 1 or not constant_along(labels, list(axes))

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
    head_axes = [i for i in range(len(lb)) if not constant_along(q0, [i])]
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
    self.rank_shared_heads(heads.ids, q_blocks, k_blocks)
    self.arch.block_ties.append([[np.array([h]) for h in heads.ids], q_blocks, k_blocks])
    labels = head_of[(Ellipsis,) + (0,) * len(lc)]  # [batch...]
    labels = labels.reshape(labels.shape + (1,) * (len(shape) - labels.ndim))
    return Data(np.broadcast_to(labels, shape), program)

  def rank_shared_heads(self, heads: np.ndarray, q_blocks, k_blocks):
    """Grouped-query attention: query heads that read the same key neurons are told apart by
    their rank in their group (head r of one group may only trade places with head r of
    another, as the groups move as wholes), so each tied unit holds one query neuron per rank."""
    by_keys: dict[bytes, list[int]] = {}
    for h, keys in enumerate(k_blocks):
      by_keys.setdefault(keys.tobytes(), []).append(h)
    if all(len(members) == 1 for members in by_keys.values()):
      return
    rank = np.zeros(len(heads), np.int64)
    for members in by_keys.values():
      rank[members] = np.arange(len(members))
    for r in np.unique(rank):
      chosen = np.flatnonzero(rank == r)
      self.record_segments(heads, heads[chosen])
      queries = np.concatenate([q_blocks[h] for h in chosen])
      self.record_segments(queries, queries)

  def attend(self, eqn, weights: Data, values: Data, values_is_lhs: bool, shape) -> Data:
    (lc, rc), (lb, rb) = eqn.params['dimension_numbers']
    wc, vc, wb, vb = (rc, lc, rb, lb) if values_is_lhs else (lc, rc, lb, rb)
    v_labels = fold_padding(np.asarray(values.labels), vc)  # padded positions add nothing
    if v_labels is None:
      raise self.fail('attention that averages across neurons', eqn)
    v_labels = np.broadcast_to(v_labels, np.shape(values.labels))
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

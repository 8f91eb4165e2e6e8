"""Rotary embeddings, ALiBi and grouped-query attention: drawn symmetries preserve the output
and move something; the changes that look like symmetries but are not (a Q/K dimension swap
under rotary, a head swap under ALiBi, a query head moved to another key/value group) change
the function AND give a non-isomorphic graph; the same edit without the position-dependent
part is a true symmetry (positive twin). The safety net catches a tracer that misses a
constraint."""

import functools

import jax
import numpy as np
import pytest

import gmn_jax
from gmn_jax.graphs.tracing import elementwise
from tests.support import attention_models, graph_iso


@functools.lru_cache(maxsize=None)
def _traced(name):
  model, v, args, _ = attention_models.build(name)
  pg = gmn_jax.trace(model, v, *args)  # the safety net runs here (2 draws)
  return pg, v, jax.jit(lambda w: model.apply(w, *args))


def _rel_change(a, b) -> float:
  a, b = np.asarray(a), np.asarray(b)
  return float(np.abs(a - b).max() / np.abs(a).max())


@pytest.mark.parametrize('name', ['rotary', 'rotary_interleaved', 'alibi', 'gqa',
                                  'gqa_rotary_alibi'])
def test_drawn_symmetries_preserve_the_output_and_move_hidden_neurons(name):
  pg, v, fn = _traced(name)
  graph = pg.encode(v)
  for a, b in zip(jax.tree.leaves(pg.decode(graph)), jax.tree.leaves(v)):
    np.testing.assert_array_equal(a, b)
  moved = 0
  for seed in range(3):
    sym = pg.random_symmetry(seed)
    assert _rel_change(fn(v), fn(sym.apply(v))) < 1e-4
    moved += int((sym.node_perm != np.arange(pg.n_node)).sum())
  assert moved > 0


def _edit(v, fn_by_leaf):
  """A copy of `v` with fn(leaf) applied to Attention_0/<part>/<leaf> for each entry."""
  v = jax.tree.map(np.array, v)
  attention = v['params']['Attention_0']
  for (part, leaf), fn in fn_by_leaf.items():
    attention[part][leaf] = fn(attention[part][leaf])
  return v


def _swap(axis, i, j):
  def move(x):
    x = np.array(x)
    index = [slice(None)] * x.ndim
    order = list(range(x.shape[axis]))
    order[i], order[j] = order[j], order[i]
    index[axis] = order
    return x[tuple(index)]
  return move


def _heads_swapped(v, heads, kv_heads=None):
  """Query heads `heads` (a pair) swapped, with key/value heads `kv_heads` and out rows."""
  edits = {('query', 'kernel'): _swap(1, *heads), ('query', 'bias'): _swap(0, *heads),
           ('out', 'kernel'): _swap(0, *heads)}
  for part in ('key', 'value'):
    if kv_heads is not None:
      edits[(part, 'kernel')] = _swap(1, *kv_heads)
      edits[(part, 'bias')] = _swap(0, *kv_heads)
  return _edit(v, edits)


def _qk_dims_swapped(v):
  """Within head 0 of Q and of K (one and the same permutation): dimensions 0 and 1 swap."""
  def move(axis):
    def inner(x):
      x = np.array(x)
      index = [slice(None)] * x.ndim
      index[axis] = 0
      x[tuple(index)] = _swap(-1, 0, 1)(x[tuple(index)])
      return x
    return inner
  return _edit(v, {(p, l): move(1 if l == 'kernel' else 0) for p in ('query', 'key')
                   for l in ('kernel', 'bias')})


def _assert_symmetry(name, edited_fn):
  pg, v, fn = _traced(name)
  edited = edited_fn(v)
  assert _rel_change(fn(v), fn(edited)) < 1e-4
  assert graph_iso.isomorphic(pg.encode(v), pg.encode(edited))


def _assert_not_a_symmetry(name, edited_fn):
  pg, v, fn = _traced(name)
  edited = edited_fn(v)
  assert _rel_change(fn(v), fn(edited)) > 1e-3, 'the edit should change the function'
  assert not graph_iso.isomorphic(pg.encode(v), pg.encode(edited))


def test_swapping_heads_with_different_alibi_slopes_is_not_a_symmetry():
  _assert_not_a_symmetry('alibi', lambda v: _heads_swapped(v, (0, 1), (0, 1)))


def test_swapping_heads_without_alibi_is_a_symmetry():
  _assert_symmetry('rotary', lambda v: _heads_swapped(v, (0, 1), (0, 1)))


def test_permuting_qk_dimensions_under_rotary_is_not_a_symmetry():
  _assert_not_a_symmetry('rotary', _qk_dims_swapped)


def test_permuting_qk_dimensions_without_rotary_is_a_symmetry():
  _assert_symmetry('alibi', _qk_dims_swapped)


def test_moving_a_query_head_to_another_kv_group_is_not_a_symmetry():
  _assert_not_a_symmetry('gqa', lambda v: _heads_swapped(v, (0, 2)))


def test_swapping_kv_groups_with_their_query_heads_is_a_symmetry():
  _assert_symmetry('gqa', lambda v: _heads_swapped(
      _heads_swapped(v, (0, 2), (0, 1)), (1, 3)))


def test_swapping_heads_without_their_relative_bias_columns_is_not_a_symmetry():
  _assert_not_a_symmetry('relative_bias', lambda v: _heads_swapped(v, (0, 1), (0, 1)))


def test_swapping_heads_with_their_relative_bias_columns_is_a_symmetry():
  _assert_symmetry('relative_bias', lambda v: _edit(
      _heads_swapped(v, (0, 1), (0, 1)), {('relative_bias', 'embedding'): _swap(1, 0, 1)}))


def test_the_safety_net_names_the_groups_when_a_constraint_is_missed(monkeypatch):
  """With the rule for constants that tell heads apart switched off, ALiBi's heads look
  interchangeable; the numerical check must refuse the trace, naming the heads."""
  monkeypatch.setattr(elementwise.ElementwiseRules, 'distinguish_by_constants',
                      lambda *a, **k: None)
  model, v, args, _ = attention_models.build('alibi')
  with pytest.raises(gmn_jax.SymmetryError, match='heads'):
    gmn_jax.trace(model, v, *args)
  gmn_jax.trace(model, v, *args, check_symmetries=0)  # off: the trace itself succeeds

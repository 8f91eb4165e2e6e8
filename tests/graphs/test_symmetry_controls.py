"""Negative controls: changes that are not symmetries change the function AND the graph; the
true attention symmetry that the reference GMN code misses keeps the graph isomorphic."""

import copy

import flax.linen as nn
from tests.support import graph_iso
import jax
import jax.numpy as jnp
import numpy as np

import gmn_jax

ATTENTION = ('params', 'TransformerBlock_0', 'MultiHeadDotProductAttention_0')


def _edit(variables, path, fn):
  variables = copy.deepcopy(jax.tree.map(np.asarray, variables))
  node = variables
  for key in path[:-1]:
    node = node[key]
  node[path[-1]] = fn(node[path[-1]])
  return variables


def _changed(a, b) -> bool:
  a, b = np.asarray(a), np.asarray(b)
  return float(np.abs(a - b).max() / np.abs(a).max()) > 1e-3


def _assert_not_a_symmetry(pg, fn, variables, edited):
  assert _changed(fn(variables), fn(edited)), 'the edit should change the function'
  assert not graph_iso.isomorphic(pg.encode(variables), pg.encode(edited))


def test_permuting_input_neurons_is_not_a_symmetry(traced):
  pg, v, fn = traced('mlp')
  edited = _edit(v, ('params', 'Dense_0', 'kernel'), lambda k: k[[1, 2, 0]])
  _assert_not_a_symmetry(pg, fn, v, edited)


def test_permuting_output_neurons_is_not_a_symmetry(traced):
  pg, v, fn = traced('mlp')
  edited = _edit(v, ('params', 'Dense_2', 'kernel'), lambda k: k[:, ::-1])
  edited = _edit(edited, ('params', 'Dense_2', 'bias'), lambda b: b[::-1])
  _assert_not_a_symmetry(pg, fn, v, edited)


def test_swapping_query_and_key_is_not_a_symmetry(traced):
  pg, v, fn = traced('vit')
  attention = v['params']['TransformerBlock_0']['MultiHeadDotProductAttention_0']
  edited = _edit(v, ATTENTION + ('query',), lambda _: attention['key'])
  edited = _edit(edited, ATTENTION + ('key',), lambda _: attention['query'])
  _assert_not_a_symmetry(pg, fn, v, edited)


def test_moving_a_dimension_between_heads_is_not_a_symmetry(traced):
  pg, v, fn = traced('vit')

  def swap_heads(x):  # kernel [D, heads, head_dim] or bias [heads, head_dim]
    x = np.array(x)
    x[..., [0, 1], 0] = x[..., [1, 0], 0]
    return x

  edited = v
  for part in ('query', 'key'):
    for leaf in ('kernel', 'bias'):
      edited = _edit(edited, ATTENTION + (part, leaf), swap_heads)
  _assert_not_a_symmetry(pg, fn, v, edited)


def test_different_within_head_permutations_for_qk_and_vo_are_a_symmetry(traced):
  """The reference GMN code gives a non-isomorphic graph here; the function is unchanged."""
  pg, v, fn = traced('vit')
  qk, vo = np.array([1, 0, 3, 2]), np.array([2, 3, 0, 1])

  def within_head_0(perm, axis):
    def move(x):
      x = np.array(x)
      index = [slice(None)] * x.ndim
      index[axis] = 0
      head = x[tuple(index)]
      x[tuple(index)] = np.take(head, perm, axis=-1 if axis != 0 else 0)
      return x
    return move

  edited = v
  for part in ('query', 'key'):
    edited = _edit(edited, ATTENTION + (part, 'kernel'), within_head_0(qk, 1))
    edited = _edit(edited, ATTENTION + (part, 'bias'), within_head_0(qk, 0))
  edited = _edit(edited, ATTENTION + ('value', 'kernel'), within_head_0(vo, 1))
  edited = _edit(edited, ATTENTION + ('value', 'bias'), within_head_0(vo, 0))
  edited = _edit(edited, ATTENTION + ('out', 'kernel'), within_head_0(vo, 0))
  assert not _changed(fn(v), fn(edited))
  assert graph_iso.isomorphic(pg.encode(v), pg.encode(edited))


class _CNN(nn.Module):
  strides: int = 1
  act: str = 'relu'

  @nn.compact
  def __call__(self, x):
    act = {'relu': nn.relu, 'tanh': jnp.tanh}[self.act]
    x = act(nn.Conv(3, (3, 3), strides=self.strides)(x))
    return nn.Dense(2)(act(nn.Dense(4)(x.mean(axis=(1, 2)))))


def _same_weights_two_models(a: _CNN, b: _CNN):
  x = jax.random.normal(jax.random.key(0), (2, 6, 6, 2))
  v = a.init(jax.random.key(1), x)
  v = jax.tree.map(lambda l: l + 0.1 * jax.random.normal(jax.random.key(2), l.shape), v)
  pa, pb = gmn_jax.trace(a, v, x), gmn_jax.trace(b, v, x)
  assert _changed(a.apply(v, x), b.apply(v, x))
  assert not graph_iso.isomorphic(pa.encode(v), pb.encode(v))


def test_conv_stride_reaches_the_graph():
  _same_weights_two_models(_CNN(strides=1), _CNN(strides=2))


def test_activation_reaches_the_graph():
  _same_weights_two_models(_CNN(act='relu'), _CNN(act='tanh'))

"""Shared parameters (GMN paper: one edge per use, one slot per scalar, one permutation for all
uses): a layer applied at two depths and tied input/output embeddings."""

import copy

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tests.support import graph_iso

import gmn_jax


class _SharedLayer(nn.Module):
  """ALBERT-style: one Dense applied at two depths."""

  @nn.compact
  def __call__(self, x):
    layer = nn.Dense(4, name='shared')
    h = layer(nn.relu(layer(nn.Dense(4, name='stem')(x))))
    return nn.Dense(3, name='head')(nn.relu(h))


class _TiedEmbedding(nn.Module):
  """An LM head tied to the input embedding (`nn.Embed.attend`)."""

  @nn.compact
  def __call__(self, ids):
    embed = nn.Embed(11, 6, name='embed')
    h = nn.Dense(6, name='mix')(nn.relu(nn.Dense(5, name='up')(embed(ids))))
    return embed.attend(h)


_CASES = {'shared_layer': (_SharedLayer(), jnp.linspace(-1.0, 1.0, 8).reshape(2, 4)),
          'tied_embedding': (_TiedEmbedding(), jnp.array([[1, 2, 3, 7]]))}


@pytest.fixture(scope='module')
def cases():
  out = {}
  for name, (model, x) in _CASES.items():
    v = model.init(jax.random.key(0), x)
    v = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(1), a.shape), v)
    # the safety net inside trace checks 2 drawn symmetries against the model's output
    out[name] = (gmn_jax.trace(model, v, x), v, jax.jit(lambda p, m=model, x=x: m.apply(p, x)))
  return out


_SHARED_LEAF = {'shared_layer': "['params']['shared']['kernel']",
                'tied_embedding': "['params']['embed']['embedding']"}


@pytest.mark.parametrize('name', sorted(_CASES))
def test_one_edge_per_use_one_slot_per_scalar_one_permutation_for_all_uses(cases, name):
  pg, v, fn = cases[name]
  graph = pg.encode(v)
  for a, b in zip(jax.tree.leaves(pg.decode(graph)), jax.tree.leaves(v)):
    np.testing.assert_array_equal(a, b)
  assert len(np.unique(pg.slot_of)) == len(pg.slot_of) == pg.n_params
  values = np.asarray(jax.tree.leaves(v)[pg.leaf_paths.index(_SHARED_LEAF[name])])
  # both uses carry every value of the shared leaf
  assert np.isin(np.asarray(graph.edges['weight']), values.ravel()).sum() == 2 * values.size
  sym = pg.random_symmetry(5)
  assert (sym.node_perm != np.arange(pg.n_node)).any()
  moved = sym.apply(v)
  np.testing.assert_allclose(fn(moved), fn(v), rtol=1e-5, atol=1e-5)
  permuted = sym.apply_graph(graph)  # isomorphic: the graph of the permuted parameters
  np.testing.assert_array_equal(pg.encode(moved).edges['weight'], permuted.edges['weight'])
  np.testing.assert_array_equal(pg.encode(moved).nodes['param'], permuted.nodes['param'])


def test_permuting_a_shared_layer_in_one_use_only_is_not_a_symmetry(cases):
  """Permute the shared layer's output neurons and compensate in the head (the consumer of its
  second use) but not in its own second use: the function and the graph both change."""
  pg, v, fn = cases['shared_layer']
  edited = copy.deepcopy(jax.tree.map(np.asarray, v))
  perm = np.array([1, 0, 3, 2])
  p = edited['params']
  p['shared']['kernel'] = p['shared']['kernel'][:, perm]
  p['shared']['bias'] = p['shared']['bias'][perm]
  p['head']['kernel'] = p['head']['kernel'][perm]
  assert float(np.abs(fn(v) - fn(edited)).max()) > 1e-3
  assert not graph_iso.isomorphic(pg.encode(v), pg.encode(edited))

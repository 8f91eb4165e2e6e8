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
    out[name] = (gmn_jax.trace(model, v, x, check_symmetries=3), v,
                 jax.jit(lambda p, m=model, x=x: m.apply(p, x)))
  return out


@pytest.mark.parametrize('name', sorted(_CASES))
def test_round_trip_is_exact_with_one_slot_per_scalar(cases, name):
  pg, v, _ = cases[name]
  decoded = pg.decode(pg.encode(v))
  for a, b in zip(jax.tree.leaves(decoded), jax.tree.leaves(v)):
    np.testing.assert_array_equal(a, b)
  assert len(np.unique(pg.slot_of)) == len(pg.slot_of) == pg.n_params
  leaf = {'shared_layer': "['params']['shared']['kernel']",
          'tied_embedding': "['params']['embed']['embedding']"}[name]
  values = np.asarray(jax.tree.leaves(v)[pg.leaf_paths.index(leaf)])
  # one edge per use: both uses carry every value of the shared leaf
  weight = np.asarray(pg.encode(v).edges['weight'])
  assert np.isin(weight, values.ravel()).sum() == 2 * values.size


@pytest.mark.parametrize('name', sorted(_CASES))
def test_drawn_symmetries_permute_every_use_alike(cases, name):
  pg, v, fn = cases[name]
  ref = fn(v)
  moved = 0
  for seed in range(3):
    sym = pg.random_symmetry(seed)
    np.testing.assert_allclose(fn(sym.apply(v)), ref, rtol=1e-5, atol=1e-5)
    g1, g2 = pg.encode(sym.apply(v)), sym.apply_graph(pg.encode(v))
    np.testing.assert_array_equal(g1.edges['weight'], g2.edges['weight'])
    np.testing.assert_array_equal(g1.nodes['param'], g2.nodes['param'])
    moved += int((sym.node_perm != np.arange(pg.n_node)).sum())
  assert moved > 0


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

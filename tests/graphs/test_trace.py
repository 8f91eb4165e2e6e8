"""Parameter graphs of every supported model family: coverage, round trips, symmetries.

Corner cases covered by the models (see `tests/support/models.py`): strided/dilated/padded, depthwise and
grouped convolutions, BatchNorm running statistics, GroupNorm, residual projection shortcuts,
attention heads, embeddings, Conv -> Flatten -> Dense, 1D convolutions, nnx modules.
"""

from tests.support import graph_iso
import flax.linen
import jax
import jax.numpy as jnp
from tests.support import models
import numpy as np
import pytest

import gmn_jax

ALL = models.ALL


def _leaves_equal(a, b) -> bool:
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(la) == len(lb) and all(
      np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y) for x, y in zip(la, lb))


def _relative_error(a, b) -> float:
  a, b = np.asarray(a), np.asarray(b)
  return float(np.abs(a - b).max() / (np.abs(a).max() + 1e-12))


@pytest.mark.parametrize('name', ALL)
def test_every_scalar_has_exactly_one_slot(traced, name):
  pg, variables, _ = traced(name)
  leaves, treedef = jax.tree.flatten(variables)
  # Give every scalar a distinct value (1, 2, ...): each must show up exactly once.
  sizes = [np.size(l) for l in leaves]
  ids = np.arange(1, sum(sizes) + 1, dtype=np.float32)
  labelled = [ids[o:o + s].reshape(np.shape(l)) for o, s, l in
              zip(np.cumsum([0] + sizes[:-1]), sizes, leaves)]
  graph = pg.encode(jax.tree.unflatten(treedef, labelled))
  weight, param = np.asarray(graph.edges['weight']), np.asarray(graph.nodes['param'])
  held = np.concatenate([weight[np.asarray(graph.edges['mask'])],
                         param[np.asarray(graph.nodes['param_mask'])]])
  np.testing.assert_array_equal(np.sort(held), ids)
  assert not weight[~np.asarray(graph.edges['mask'])].any()
  assert not param[~np.asarray(graph.nodes['param_mask'])].any()


@pytest.mark.parametrize('name', ALL)
def test_decode_inverts_encode_bit_for_bit(traced, name):
  pg, variables, _ = traced(name)
  assert _leaves_equal(pg.decode(pg.encode(variables)), variables)
  assert _leaves_equal(jax.jit(pg.decode)(jax.jit(pg.encode)(variables)), variables)


@pytest.mark.parametrize('name', ALL)
def test_random_symmetry_keeps_function_and_graph(traced, name):
  pg, variables, fn = traced(name)
  graph = pg.encode(variables)
  drawn = (pg.random_symmetry(jax.random.key(seed)) for seed in range(50))
  moving = [s for s in drawn if (s.node_perm != np.arange(pg.n_node)).any()][:2]
  assert len(moving) == 2, 'random symmetries never move a neuron'
  for sym in moving:
    permuted = sym.apply(variables)
    assert not _leaves_equal(permuted, variables)
    assert _relative_error(fn(variables), fn(permuted)) < 1e-5
    permuted_graph = pg.encode(permuted)
    assert _leaves_equal(sym.apply_graph(graph), permuted_graph)
    assert graph_iso.isomorphic(graph, permuted_graph)


def test_encode_vmaps_over_a_zoo_and_jits(traced):
  pg, variables, _ = traced('cnn_bn')
  zoo = jax.tree.map(lambda l: jnp.stack([l, 2 * l, -l]), variables)
  graphs = jax.vmap(pg.encode)(zoo)
  assert graphs.edges['weight'].shape == (3, pg.n_edge, pg.kernel_size)
  for i in range(3):
    member = jax.tree.map(lambda l: l[i], zoo)
    np.testing.assert_array_equal(graphs.edges['weight'][i], pg.encode(member).edges['weight'])
    np.testing.assert_array_equal(graphs.nodes['param'][i], pg.encode(member).nodes['param'])
  assert _leaves_equal(jax.jit(pg.encode)(variables), pg.encode(variables))


@pytest.mark.parametrize('name', ['mlp', 'cnn_gap', 'cnn_flatten', 'conv1d'])
def test_from_params_gives_the_traced_graph(traced, name):
  pg, variables, _ = traced(name)
  chain = gmn_jax.from_params(variables['params'])
  assert _leaves_equal(chain.encode(variables['params']), pg.encode(variables))
  assert _leaves_equal(chain.decode(chain.encode(variables['params'])), variables['params'])


def test_from_params_rejects_a_broken_chain(traced):
  _, variables, _ = traced('mlp')
  params = dict(variables['params'])
  params['Dense_1'] = {'kernel': jnp.ones((7, 5)), 'bias': jnp.ones(5)}
  with pytest.raises(ValueError, match='do not chain'):
    gmn_jax.from_params(params)


def test_nnx_module_encodes_directly(traced):
  pg, state, _ = traced('cnn_nnx')
  model = models.get('cnn_nnx').model
  assert _leaves_equal(pg.encode(model), pg.encode(state))


def test_summary_names_groups_and_counts(traced):
  pg, _, _ = traced('resnet')
  text = pg.summary()
  assert f'{pg.n_node} nodes' in text and 'residual' in text and 'BatchNorm' in text


def test_first_template_use_inside_jit_caches_no_tracer():
  model = flax.linen.Dense(3)
  x = jnp.ones((1, 2))
  pg = gmn_jax.trace(model, model.init(jax.random.key(0), x), x)  # fresh: nothing cached yet
  weight = jnp.ones((pg.n_edge, pg.kernel_size))
  param = jnp.ones((pg.n_node, pg.node_param_size))
  inside = jax.jit(lambda w, p: pg.graph_from_features(w, p).edges['mask'])(weight, param)
  outside = pg.graph_from_features(weight, param)  # would meet a leaked tracer
  np.testing.assert_array_equal(np.asarray(outside.edges['mask']), np.asarray(inside))
  assert isinstance(outside.senders, jax.Array)

"""GMN's edge pass in rematerialised blocks (`GMN(edge_chunk=...)`) equals the one-pass GMN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax.metanets.edge_chunks import round_edges
from tests.support import tiny_metanets as metanets

CHUNK = 32


def _batch():
  graphs = [metanets.case(metanets.FAMILIES[f]) for f in ('cnn_bn', 'resnet')]
  budget = gmn_jax.budget_for([pg for pg, _ in graphs], 2)
  return gmn_jax.batch([pg.encode(v) for pg, v in graphs], round_edges(budget, CHUNK))


def test_chunked_gmn_equals_one_pass():
  """Same parameter names and initial values; same outputs and gradients (1e-5) with globals,
  both directions, edge updates, sum and mean with degree scalers, under remat."""
  graphs = _batch()
  assert graphs.senders.shape[0] // CHUNK >= 3  # several blocks
  model = gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=2, readout_hidden=8,
                      edge_readout='direct', use_globals=True, global_dim=8,
                      aggregation=('mean', 'sum'))
  chunked = model.clone(edge_chunk=CHUNK, remat_layers=True)
  init, init_chunked = (jax.jit(m.init)(jax.random.key(0), graphs) for m in (model, chunked))
  assert jax.tree.structure(init) == jax.tree.structure(init_chunked)
  for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(init_chunked)):
    np.testing.assert_array_equal(a, b)
  params = metanets.random_params(model, graphs)

  def step(m):
    def loss(p):
      out = m.apply(p, graphs)
      return jnp.sum(out.globals ** 2) + jnp.sum(out.edges['weight'] ** 2), out
    return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

  (value, out), grads = step(model)
  (value_c, out_c), grads_c = step(chunked)
  np.testing.assert_allclose(out_c.globals, out.globals, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(out_c.edges['weight'], out.edges['weight'], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(value_c, value, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(grads_c), jax.tree.leaves(grads)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  assert np.std(out.globals[:2]) > 0


def test_chunks_that_cannot_be_accumulated_or_do_not_divide_are_refused():
  graphs = _batch()
  with pytest.raises(ValueError, match='cannot be accumulated'):
    jax.eval_shape(gmn_jax.GMN(node_dim=4, edge_dim=4, num_layers=1, aggregation='pna',
                               edge_chunk=CHUNK).init, jax.random.key(0), graphs)
  n_edge = graphs.senders.shape[0]
  shards = next(s for s in range(2, 10) if n_edge % (CHUNK * s))
  with pytest.raises(ValueError, match=rf'round_edges\(budget, {CHUNK * shards}\)'):
    jax.eval_shape(gmn_jax.GMN(node_dim=4, edge_dim=4, num_layers=1, edge_chunk=CHUNK,
                               edge_shards=shards).init, jax.random.key(0), graphs)

"""GMN with the edge axis split over 4 devices equals GMN on one device (run by
test_sharding.py with 4 CPU devices). Corner cases: a batch of two architectures whose edge
blocks straddle graphs and the padding edges; PNA aggregation (min, max, std across shards)
with globals; remat in the backward pass; the edge pass in blocks (`edge_chunk`) on one
device and on each shard; an edge count the shards do not divide."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax.metanets.sharded import edge_shardings, shard_edges
from tests.support import tiny_metanets as metanets


CHUNK = 16


def _batch(shards: int):
  graphs = [metanets.case(metanets.FAMILIES[f]) for f in ('cnn_bn', 'resnet')]
  encoded = [pg.encode(v) for pg, v in graphs]
  budget = gmn_jax.budget_for([pg for pg, _ in graphs], 1, multiple=CHUNK * shards)
  return gmn_jax.batch(encoded, budget._replace(n_node=budget.n_node * 2,
                                                n_edge=budget.n_edge * 2, n_graph=3))


def _step(m):
  def loss(p, g):
    out = m.apply(p, g)
    return jnp.sum(out.globals ** 2) + jnp.sum(out.edges['weight'] ** 2), out
  return jax.jit(jax.value_and_grad(loss, has_aux=True))


def _assert_same(got, want):
  """`(value, out), grads` of two models' steps agree (outputs 1e-5, gradients 1e-4)."""
  (value, out), grads = want
  (value2, out2), grads2 = got
  np.testing.assert_allclose(out2.globals, out.globals, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out2.edges['weight'], out.edges['weight'], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(value2, value, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(grads2), jax.tree.leaves(grads)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
  assert np.std(out.globals[:2]) > 0  # two different graphs give two different outputs


def _sharded_equals(model, sharded_model, unsharded_models=(), streamed=False):
  """Outputs and gradients of `sharded_model` on 4 edge shards (and of `unsharded_models` on
  one device) are `model`'s on one device. `streamed`: the sharded model streams its edges
  (`edge_shards=4`), and its compiled step has no collective inside a loop and gathers no
  edge array."""
  assert jax.device_count() == 4
  graphs = _batch(4)
  params = metanets.random_params(model, graphs)
  want = _step(model)(params, graphs)
  for other in unsharded_models:
    _assert_same(_step(other)(params, graphs), want)
  mesh = gmn_jax.make_mesh()
  sharded = shard_edges(graphs, mesh)
  assert len(sharded.senders.sharding.device_set) == 4
  assert sharded.senders.addressable_shards[0].data.shape[0] == graphs.senders.shape[0] // 4
  with jax.set_mesh(mesh):
    step = _step(sharded_model)
    got = step(params, sharded)
    total, in_loops, gathers = gmn_jax.mesh.collectives(step.lower(params, sharded).compile())
  assert got[0][1].edges['weight'].sharding.spec[0] == 'data'  # edge outputs stay split
  _assert_same(got, want)
  if streamed:  # the devices meet after each edge scan, not in it
    assert total > 0 and in_loops == 0 and gathers == 0, (total, in_loops, gathers)


def test_edge_sharded_gmn_equals_unsharded():
  """PNA aggregation (sums, counts, min, max, std across shards) with globals; the sharded
  model also rematerialises its layer, the reference does not. One layer: every layer is
  the same block, whose cross-shard reductions one layer exercises."""
  model = gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=1, readout_hidden=8,
                      edge_readout='direct', aggregation='pna', use_globals=True, global_dim=8)
  _sharded_equals(model, model.clone(remat_layers=True))


def test_edge_blocks_equal_one_pass_on_one_device_and_on_each_shard():
  """`edge_chunk` (edge vectors streamed block by block, `edge_chunks.EdgeStream`) has the
  one-pass GMN's parameter names and initial values, and its outputs and gradients: on one
  device, and with `edge_shards=4` on edge-sharded graphs (each device scans its own
  blocks). Globals, both directions, edge updates recomputed in the later layer, sum
  and mean with degree scalers, weights standardised per layer."""
  model = gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=2, readout_hidden=8,
                      edge_readout='direct', use_globals=True, global_dim=8,
                      aggregation=('mean', 'sum'), normalize_weights=True)
  chunked = model.clone(edge_chunk=CHUNK)
  graphs = _batch(4)
  assert graphs.senders.shape[0] // CHUNK >= 3  # several blocks
  key = jax.random.key(0, impl='unsafe_rbg')  # fast to compile, as in test_init_runs
  init, init_chunked = (jax.jit(m.init)(key, graphs) for m in (model, chunked))
  assert jax.tree.structure(init) == jax.tree.structure(init_chunked)
  for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(init_chunked)):
    np.testing.assert_array_equal(a, b)
  _sharded_equals(model, chunked.clone(edge_shards=4), unsharded_models=[chunked],
                  streamed=True)


def test_streamed_edge_shards_need_the_mesh_set():
  model = gmn_jax.GMN(node_dim=4, edge_dim=4, num_layers=1, readout_hidden=4,
                      edge_chunk=CHUNK, edge_shards=4)
  graphs = shard_edges(_batch(4), gmn_jax.make_mesh())
  with pytest.raises(ValueError, match=r'jax.set_mesh\(gmn_jax.make_mesh\(data=4\)\)'):
    jax.eval_shape(model.init, jax.random.key(0), graphs)


def test_an_edge_count_the_shards_do_not_divide_is_refused():
  pg, variables = metanets.case('mlp')
  graph = pg.encode(variables)
  budget = gmn_jax.budget_for(pg, 1, multiple=1)
  odd = budget._replace(n_edge=4 * (budget.n_edge // 4) + 5)  # room for all, not divisible
  with pytest.raises(ValueError, match='multiple of 4'):
    edge_shardings(gmn_jax.batch([graph], odd), gmn_jax.make_mesh())

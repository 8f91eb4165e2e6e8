"""Batching to a fixed budget, padding masks, unbatching, per-layer standardisation.

Corner cases: three architectures with different K and P in one batch; a budget with 0-node
padding graphs; a batch that does not fit; an unpadded `jraph.batch`; a single-edge graph
with no per-neuron parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest

import gmn_jax
from tests.support import tiny_metanets as metanets

MIXED = ('mlp', 'cnn_bn', 'vit')  # K = 1, 9, 4 and P = 1, 5, 7


def _mixed():
  cases = [metanets.case(name) for name in MIXED]
  return [pg for pg, _ in cases], [v for _, v in cases], [pg.encode(v) for pg, v in cases]


def test_budget_for_templates_and_graphs():
  templates, _, graphs = _mixed()
  budget = gmn_jax.budget_for(templates, batch_size=4, multiple=1)
  largest = max(templates, key=lambda pg: pg.n_edge)
  assert budget == gmn_jax.Budget(
      n_node=4 * max(pg.n_node for pg in templates) + 1, n_edge=4 * largest.n_edge,
      n_graph=5, kernel_size=9, param_size=7)
  # Graphs count once each: the budget for all three is their sum.
  exact = gmn_jax.budget_for(graphs, batch_size=3, multiple=1)
  assert exact.n_node == sum(pg.n_node for pg in templates) + 1
  assert exact.n_edge == sum(pg.n_edge for pg in templates)
  assert gmn_jax.budget_for(templates[0], 2, multiple=8).n_node % 8 == 0


def test_batch_pads_to_the_budget_and_unbatch_inverts_it():
  templates, variables, graphs = _mixed()
  budget = gmn_jax.Budget(n_node=300, n_edge=900, n_graph=6, kernel_size=10, param_size=8)
  batch = gmn_jax.batch(graphs, budget)
  assert batch.n_node.shape == (6,) and batch.n_edge.shape == (6,)
  assert batch.nodes['param'].shape == (300, 8) and batch.edges['weight'].shape == (900, 10)
  assert int(batch.n_node.sum()) == 300 and int(batch.n_edge.sum()) == 900
  assert batch.n_node[3] == 300 - sum(pg.n_node for pg in templates)
  assert batch.n_node[4:].tolist() == [0, 0]
  np.testing.assert_array_equal(gmn_jax.graph_mask(batch), [True] * 3 + [False] * 3)
  np.testing.assert_array_equal(jraph.get_graph_padding_mask(batch), gmn_jax.graph_mask(batch))
  # Padding slots are masked out and zero.
  assert not batch.edges['mask'][:, 9:].any() and not batch.nodes['param_mask'][:, 7:].any()
  assert not batch.edges['weight'][:templates[0].n_edge, 1:].any()  # the MLP has K = 1
  # Padding edges join padding nodes only.
  real_nodes = sum(pg.n_node for pg in templates)
  real_edges = sum(pg.n_edge for pg in templates)
  assert (batch.senders[real_edges:] >= real_nodes).all()
  assert (batch.receivers[real_edges:] >= real_nodes).all()

  parts = gmn_jax.unbatch(batch)
  assert len(parts) == 3
  for pg, v, g, part in zip(templates, variables, graphs, parts, strict=True):
    for key in g.nodes:
      np.testing.assert_array_equal(part.nodes[key], g.nodes[key])
    for key in g.edges:
      np.testing.assert_array_equal(part.edges[key], g.edges[key])
    np.testing.assert_array_equal(part.senders, g.senders)
    np.testing.assert_array_equal(part.receivers, g.receivers)
    for x, y in zip(jax.tree_util.tree_leaves(pg.decode(part)), jax.tree_util.tree_leaves(v),
                    strict=True):
      np.testing.assert_array_equal(x, y)


def test_batch_without_budget_adds_one_padding_graph():
  _, _, graphs = _mixed()
  batch = gmn_jax.batch(graphs[:2])
  assert batch.n_node.shape == (3,) and int(batch.n_node[-1]) == 1
  assert batch.edges['weight'].shape[1] == 9 and batch.nodes['param'].shape[1] == 5
  np.testing.assert_array_equal(gmn_jax.graph_mask(batch), [True, True, False])


def test_batch_that_does_not_fit_says_what_to_raise():
  templates, _, graphs = _mixed()
  budget = gmn_jax.budget_for(templates[0], batch_size=1)
  with pytest.raises(ValueError, match='kernel_size'):
    gmn_jax.batch(graphs[1:2], budget)
  with pytest.raises(ValueError, match='n_graph'):
    gmn_jax.batch([graphs[0], graphs[0]], budget._replace(n_node=100, n_edge=200))


def test_graph_mask_of_an_unpadded_jraph_batch_is_all_true():
  _, _, graphs = _mixed()
  batch = jraph.batch([graphs[0], graphs[0]])
  np.testing.assert_array_equal(gmn_jax.graph_mask(batch), [True, True])
  assert len(gmn_jax.unbatch(batch)) == 2


def test_pad_features_is_jittable():
  _, _, graphs = _mixed()
  padded = jax.jit(gmn_jax.pad_features, static_argnums=(1, 2))(graphs[0], 3, 2)
  assert padded.edges['weight'].shape == (graphs[0].edges['weight'].shape[0], 3)
  assert padded.nodes['param_mask'].shape == (graphs[0].nodes['param'].shape[0], 2)
  np.testing.assert_array_equal(padded.edges['weight'][:, :1], graphs[0].edges['weight'])
  assert not padded.edges['mask'][:, 1:].any()


def test_standardize_per_layer_per_graph_and_with_data_set_statistics():
  templates, _, graphs = _mixed()
  batch = gmn_jax.batch(graphs)
  standardize = jax.jit(gmn_jax.standardize_per_layer)
  out = standardize(batch)
  layer = np.asarray(batch.nodes['layer'])[np.asarray(batch.receivers)]
  mask = np.asarray(batch.edges['mask'])
  w = np.asarray(out.edges['weight'])
  first = slice(0, templates[0].n_edge)  # the MLP's edges
  for l in np.unique(layer[first]):
    values = w[first][(layer[first] == l)[:, None] & mask[first]]
    if values.size > 1:
      assert abs(values.mean()) < 1e-5 and abs(values.std() - 1) < 1e-4
  assert not w[~mask].any()
  # Per graph: a graph's standardised values do not depend on its batch-mates.
  alone = standardize(gmn_jax.batch(graphs[:1]))
  np.testing.assert_allclose(alone.edges['weight'][:templates[0].n_edge], w[first, :1], atol=1e-6)
  # With data-set statistics (host-side fit, jittable use).
  stats = gmn_jax.fit_layer_statistics(graphs[:1])
  fitted = standardize(gmn_jax.batch(graphs[:1]), stats)
  np.testing.assert_allclose(fitted.edges['weight'][:templates[0].n_edge], w[first, :1], atol=1e-5)


def test_normalize_weights_option_makes_the_model_scale_invariant_per_layer():
  pg, variables = metanets.case('mlp')
  g = pg.encode(variables)
  model = metanets.tiny('gmn', normalize_weights=True)
  params = metanets.random_params(model, g)
  scaled = g._replace(edges={**g.edges, 'weight': 10.0 * g.edges['weight']},
                      nodes={**g.nodes, 'param': 10.0 * g.nodes['param']})
  apply = jax.jit(model.apply)
  np.testing.assert_allclose(apply(params, scaled).globals, apply(params, g).globals,
                             atol=1e-4)


def test_mean_log_degree():
  _, _, graphs = _mixed()
  value = gmn_jax.mean_log_degree(gmn_jax.batch(graphs))
  assert 0 < value < 5
  single = metanets.single_edge()
  assert gmn_jax.mean_log_degree(gmn_jax.batch([single[0].encode(single[1])])) == \
      pytest.approx(np.log(2))


def test_aggregators_are_finite_on_empty_segments():
  from gmn_jax.metanets import aggregation  # pylint: disable=g-import-not-at-top
  messages = jnp.array([[1.0, -2.0], [3.0, 4.0], [3.0, 4.0]])
  ids = jnp.array([0, 2, 2])

  def f(m):
    out = aggregation.aggregate(m, ids, 4, aggregation.PNA_AGGREGATORS,
                                aggregation.PNA_SCALERS)
    return jnp.sum(out ** 2), out

  (_, out), grad = jax.jit(jax.value_and_grad(f, has_aux=True))(messages)
  assert np.isfinite(out).all() and np.isfinite(grad).all()
  np.testing.assert_array_equal(out[1], 0 * out[1])  # empty segment
  np.testing.assert_allclose(out[2, :2], [3.0, 4.0])  # mean of two equal messages
  np.testing.assert_allclose(out[2, 6:8], np.sqrt(1e-5), rtol=1e-3)  # their std: exact 0
  softmax = jax.jit(aggregation.segment_softmax, static_argnums=2)
  weights = softmax(jnp.array([[1.0], [2.0], [3.0]]), ids, 4)
  np.testing.assert_allclose(weights[:, 0], [1.0, 1 / (1 + np.e), np.e / (1 + np.e)],
                             rtol=1e-6)


@pytest.mark.parametrize('kind', ['sinusoidal', 'fourier', 'linear'])
def test_slot_encoder_ignores_masked_and_padded_slots(kind):
  """Masked slots contribute nothing, whatever value they hold, and padding K wider (with the
  extra slots' parameters present but unused) changes nothing."""
  from gmn_jax.metanets.features import SlotEncoder  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  values = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
  mask = jnp.asarray(rng.uniform(size=(6, 3)) > 0.3)
  encoder = SlotEncoder(8, value_features=kind, min_slots=5)
  params = encoder.init(jax.random.key(0), values, mask)
  apply = jax.jit(encoder.apply)
  out = apply(params, values, mask)
  garbage = jnp.where(mask, values, 100.0)
  np.testing.assert_allclose(apply(params, garbage, mask), out, atol=1e-5)
  wide = jnp.concatenate([values, jnp.full((6, 2), 3.0)], 1)
  wide_mask = jnp.concatenate([mask, jnp.zeros((6, 2), bool)], 1)
  np.testing.assert_allclose(apply(params, wide, wide_mask), out, atol=1e-5)
  with pytest.raises(ValueError, match='initialised with 5'):
    encoder.apply(params, jnp.zeros((6, 7)), jnp.ones((6, 7), bool))


def test_graph_index_gives_each_node_and_edge_its_graph():
  """Graph ids equal `jnp.repeat` of the counts (found by binary search, so that an edge axis
  split over devices stays split): graphs without edges, several padding graphs, and counts
  that do not fill the arrays (the rest goes to the last graph)."""
  from gmn_jax.metanets.batching import graph_index  # pylint: disable=g-import-not-at-top
  n_edge = np.asarray([3, 0, 5, 0, 0, 2], np.int32)
  n_node = np.asarray([2, 1, 4, 1, 0, 3], np.int32)
  graphs = jraph.GraphsTuple(nodes={'x': np.zeros((12, 1))}, edges={}, senders=np.zeros(11),
                             receivers=np.zeros(11), globals=None, n_node=n_node,
                             n_edge=n_edge)
  index = jax.jit(graph_index)(graphs)
  ids = jnp.arange(6)
  np.testing.assert_array_equal(index.edge_graph,
                                jnp.repeat(ids, n_edge, total_repeat_length=11))
  np.testing.assert_array_equal(index.node_graph,
                                jnp.repeat(ids, n_node, total_repeat_length=12))
  np.testing.assert_array_equal(index.edge_graph, [0, 0, 0, 2, 2, 2, 2, 2, 5, 5, 5])

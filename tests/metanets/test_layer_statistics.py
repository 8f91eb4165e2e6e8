"""Per-layer standardisation of a metanetwork's inputs with data-set statistics.

Corner cases: a layer holding a single value (a SIREN's output bias), which per-graph
standardisation turns into 0 and data-set statistics keep; statistics summed in chunks of one
graph, of several and as one batch; both standardisations asked for at once.
"""

import jax
import numpy as np
import pytest

import gmn_jax
from gmn_jax.metanets.layer_statistics import LayerStatistics
from gmn_jax.zoos.inr import siren
from tests.support import tiny_metanets as metanets

MODEL = siren.Siren(hidden=(6, 5), omega0=30.0, output_offset=0.5, zero_bias=False)
COORDS = np.zeros((1, 2), np.float32)


def _zoo(n=7):
  """n SIRENs of one architecture, each layer drawn at its own scale and offset."""
  rng = np.random.default_rng(0)
  template = MODEL.init(jax.random.key(0), COORDS)
  zoo = []
  for _ in range(n):
    zoo.append(jax.tree.map(lambda a: (rng.normal(0.3, 2.0, a.shape) * rng.uniform(0.1, 3.0)
                                       ).astype(np.float32), template))
  pg = gmn_jax.trace(MODEL, zoo[0], COORDS)
  return pg, zoo, [pg.encode(v) for v in zoo]


def test_fit_layer_statistics_equals_numpy_per_layer_in_any_chunking():
  _, zoo, graphs = _zoo()
  stats = gmn_jax.fit_layer_statistics(graphs, chunk=3)
  for i in range(3):  # Dense_i feeds layer i + 1 (inputs are layer 0)
    kernel = np.stack([v['params'][f'Dense_{i}']['kernel'] for v in zoo]).astype(np.float64)
    bias = np.stack([v['params'][f'Dense_{i}']['bias'] for v in zoo]).astype(np.float64)
    np.testing.assert_allclose(stats.edge_mean[i + 1], kernel.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.edge_std[i + 1], kernel.std(), rtol=1e-5)
    np.testing.assert_allclose(stats.node_mean[i + 1, 0], bias.mean(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats.node_std[i + 1, 0], bias.std(), rtol=1e-5)
  # Layers without values: mean 0, std 1 (standardising them is the identity).
  assert stats.node_mean[0, 0] == 0 and stats.node_std[0, 0] == 1 and stats.edge_std[5] == 1
  for other in (gmn_jax.fit_layer_statistics(graphs, chunk=1),
                gmn_jax.fit_layer_statistics(gmn_jax.batch(graphs))):
    for a, b in zip(stats, other):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_frozen_statistics_are_a_hashable_field_that_standardises_like_the_arrays():
  _, _, graphs = _zoo()
  stats = gmn_jax.fit_layer_statistics(graphs)
  frozen = stats.frozen()
  assert isinstance(frozen, LayerStatistics) and hash(frozen) == hash(stats.frozen())
  batch = gmn_jax.batch(graphs)
  standardize = jax.jit(gmn_jax.standardize_per_layer)
  out = standardize(batch, frozen)
  np.testing.assert_array_equal(out.edges['weight'], standardize(batch, stats).edges['weight'])
  # The data set's values, standardised with its own statistics: mean 0, std 1 per layer,
  # while each graph keeps its own scale (one graph's layer is not standardised).
  layer = np.asarray(batch.nodes['layer'])[np.asarray(batch.receivers)]
  w, graph = np.asarray(out.edges['weight'])[:, 0], np.repeat(np.arange(7), graphs[0].n_edge[0])
  for l in (1, 2, 3):
    np.testing.assert_allclose([w[layer == l].mean(), w[layer == l].std()], [0, 1], atol=1e-4)
  assert np.ptp([w[(layer == 3) & (graph == g)].std() for g in range(7)]) > 0.5


def _output_bias_changed(graph, delta):
  param = np.array(graph.nodes['param'])
  param[np.asarray(graph.nodes['type']) == gmn_jax.NodeType.OUTPUT] += delta
  return graph._replace(nodes={**graph.nodes, 'param': param})


@pytest.mark.slow  # 14-24 s: keeps the fast tier within its 10 minutes
def test_data_set_statistics_keep_the_model_invariant_and_each_inr_scale_visible():
  pg, zoo, graphs = _zoo()
  stats = gmn_jax.fit_layer_statistics(graphs).frozen()
  model = metanets.tiny('nggnn', layer_statistics=stats)
  params = metanets.random_params(model, graphs[0])
  apply = jax.jit(model.apply)
  gmn_jax.testing.assert_invariant(lambda g: apply(params, g), pg, zoo[0], key=1, atol=1e-4)
  # The model reads the values standardised with the statistics, nothing else.
  raw = metanets.tiny('nggnn')
  np.testing.assert_allclose(
      apply(params, graphs[1]).globals,
      raw.apply(params, gmn_jax.standardize_per_layer(graphs[1], stats)).globals, atol=1e-5)
  # Negative twins: the scale of a layer and the single output bias are information here,
  # while per-graph standardisation divides the one out and zeroes the other.
  graph = graphs[0]
  scaled = graph._replace(edges={**graph.edges, 'weight': 3.0 * graph.edges['weight']},
                          nodes={**graph.nodes, 'param': 3.0 * graph.nodes['param']})
  shifted = _output_bias_changed(graph, 5.0)
  base = np.asarray(apply(params, graph).globals)
  for changed in (scaled, shifted):
    assert np.abs(np.asarray(apply(params, changed).globals) - base).max() > 1e-3
  per_graph = metanets.tiny('nggnn', normalize_weights=True)
  apply_per_graph = jax.jit(per_graph.apply)
  base = np.asarray(apply_per_graph(params, graph).globals)
  for changed in (scaled, shifted):
    np.testing.assert_allclose(apply_per_graph(params, changed).globals, base, atol=1e-4)


def test_both_standardisations_at_once_are_refused():
  _, _, graphs = _zoo(2)
  stats = gmn_jax.fit_layer_statistics(graphs).frozen()
  model = metanets.tiny('gmn', normalize_weights=True, layer_statistics=stats)
  with pytest.raises(ValueError, match='choose one'):
    jax.eval_shape(model.init, jax.random.key(0), graphs[0])


@pytest.mark.slow  # 14-24 s: keeps the fast tier within its 10 minutes
def test_readout_statistics_standardise_the_pooled_vectors_and_keep_invariance():
  pg, zoo, graphs = _zoo()
  model = metanets.tiny('gmn', layer_statistics=gmn_jax.fit_layer_statistics(graphs).frozen())
  batch = gmn_jax.batch(graphs)
  params = metanets.random_params(model, batch)
  mask = np.arange(len(batch.n_node)) < len(graphs)  # jraph.batch adds no padding graph
  stats = gmn_jax.fit_readout_statistics(model, params, [(batch, mask)])
  assert len(stats[0]) == len(stats[1]) and min(stats[1]) > 0
  calibrated = model.clone(readout_statistics=stats)
  # The same parameters; the readout's input now has mean 0 and std 1 (or is constant).
  mean, std = gmn_jax.fit_readout_statistics(calibrated, params, [(batch, mask)])
  np.testing.assert_allclose(mean, 0, atol=1e-4)
  assert set(np.round(std, 3)) <= {0.0, 1.0}
  apply = jax.jit(calibrated.apply)
  gmn_jax.testing.assert_invariant(lambda g: apply(params, g), pg, zoo[0], key=2, atol=1e-4)
  # Negative twin: another network's graph gives another output.
  out = np.asarray(apply(params, batch).globals)
  assert np.abs(out[0] - out[1]).max() > 1e-3
  with pytest.raises(ValueError, match='input_statistics hold'):
    model.clone(readout_statistics=((0.0,), (1.0,))).apply(params, batch)


def test_edge_blocks_read_the_same_standardised_values():
  """GMN's edge pass in blocks standardises once, before the blocks: the same output."""
  _, _, graphs = _zoo(3)
  stats = gmn_jax.fit_layer_statistics(graphs).frozen()
  batch = gmn_jax.batch(graphs)  # 3 x 47 edges
  whole = metanets.tiny('gmn', layer_statistics=stats)
  params = metanets.random_params(whole, batch)
  blocks = whole.clone(edge_chunk=47)
  np.testing.assert_allclose(jax.jit(blocks.apply)(params, batch).globals,
                             jax.jit(whole.apply)(params, batch).globals, atol=1e-4)

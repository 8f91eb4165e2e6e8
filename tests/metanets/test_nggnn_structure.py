"""NG-GNN's layer structure options (`norm`, `residual`) and the output-neuron readout.

Corner cases: a graph batched with a copy of another graph at 100 times its scale (a
normalisation over the batch would change the first graph's output; one per graph must not);
a SIREN with a single output neuron (the output pool is that neuron's vector).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax.metanets.batching import graph_index
from gmn_jax.metanets.neural_graphs import GraphNorm
from gmn_jax.metanets.readout import pool_graphs
from gmn_jax.zoos.inr import siren
from tests.support import tiny_metanets as metanets

MODEL = siren.Siren(hidden=(6, 5), omega0=30.0, output_offset=0.5, zero_bias=False)
COORDS = np.zeros((1, 2), np.float32)


@functools.lru_cache(maxsize=None)
def _sirens(n=3):
  rng = np.random.default_rng(0)
  template = MODEL.init(jax.random.key(0), COORDS)
  zoo = [jax.tree.map(lambda a: rng.normal(0.0, 1.0, a.shape).astype(np.float32), template)
         for _ in range(n)]
  pg = gmn_jax.trace(MODEL, zoo[0], COORDS)
  return pg, zoo, [pg.encode(v) for v in zoo]


def test_graph_norm_standardises_each_graph_and_keeps_its_rows_relative_sizes():
  x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
  x[4:] *= 100.0  # graph 1: another scale
  graph = jnp.asarray([0, 0, 0, 0, 1, 1, 1])
  out, _ = GraphNorm().init_with_output(jax.random.key(0), x, graph, 2)
  out = np.asarray(out)
  for rows in (slice(0, 4), slice(4, 7)):
    np.testing.assert_allclose([out[rows].mean(), out[rows].std()], [0, 1], atol=1e-3)
    # One scale per graph: rows keep their differences (a per-row LayerNorm would not).
    centred = x[rows] - x[rows].mean()
    np.testing.assert_allclose(out[rows] * centred.std(), centred, rtol=1e-3, atol=1e-3)
  # A graph's output does not depend on the other graphs of the batch.
  alone, _ = GraphNorm().init_with_output(jax.random.key(0), x[:4], graph[:4], 1)
  np.testing.assert_allclose(out[:4], alone, atol=1e-5)


@pytest.mark.slow  # 18 s at load 6 (compiling NG-GNN); the fast tier keeps GraphNorm's own test
@pytest.mark.parametrize('norm,residual,pool', [
    ('graph', False, 'output'),  # neural graphs' structure, per graph
    ('node', True, 'output'),  # the INR task's weights-only default
    ('none', True, 'all')])
def test_nggnn_structures_are_invariant_and_independent_of_batch_mates(norm, residual, pool):
  pg, zoo, graphs = _sirens()
  model = metanets.tiny('nggnn', norm=norm, residual=residual, readout_pool=pool)
  params = metanets.random_params(model, graphs[0])
  apply = jax.jit(lambda g: model.apply(params, g).globals)  # one shape: pairs of graphs
  loud = graphs[1]._replace(edges={**graphs[1].edges, 'weight': 100 * graphs[1].edges['weight']})
  with_mate = lambda g, mate: np.asarray(apply(gmn_jax.batch([g, mate])))
  gmn_jax.testing.assert_invariant(lambda g: with_mate(g, loud)[0], pg, zoo[0], key=3,
                                   n=2, atol=1e-4)
  # Batched with a graph of 100 times the scale, graph 0's output is unchanged...
  pair = with_mate(graphs[0], loud)
  np.testing.assert_allclose(pair[0], with_mate(graphs[0], graphs[2])[0], rtol=1e-4, atol=1e-4)
  # ... and (negative twin) another network gives another output.
  assert np.abs(pair[0] - pair[1]).max() > 1e-3


def test_output_pool_is_the_output_neurons_part_of_the_full_pool():
  _, _, graphs = _sirens()
  graphs = graphs[:2]
  batch = gmn_jax.batch(graphs)
  index = graph_index(batch)
  rng = np.random.default_rng(1)
  nodes = rng.normal(size=(int(np.sum(batch.n_node)), 5)).astype(np.float32)
  edges = rng.normal(size=(int(np.sum(batch.n_edge)), 3)).astype(np.float32)
  full = np.asarray(pool_graphs(batch, index, nodes, edges))
  out = np.asarray(pool_graphs(batch, index, nodes, edges, pool='output'))
  np.testing.assert_allclose(out[:2], full[:2, 10:15])  # kinds input, hidden, output, other
  # One output neuron per SIREN: its vector is the pool.
  is_out = np.asarray(batch.nodes['type']) == gmn_jax.NodeType.OUTPUT
  np.testing.assert_allclose(out[:2], nodes[is_out])
  with pytest.raises(ValueError, match='readout pool'):
    pool_graphs(batch, index, nodes, edges, pool='hidden')
  with pytest.raises(ValueError, match='norm'):
    jax.eval_shape(metanets.tiny('nggnn', norm='batch').init, jax.random.key(0), graphs[0])


def test_readout_depth_stacks_hidden_layers_of_the_invariant_mlp():
  """`readout_depth=2` (neural graphs' INR classifier: two hidden layers) adds one hidden
  layer to the invariant MLP; the default keeps one (checkpoints keep their parameters)."""
  from gmn_jax.metanets.readout import Readout  # pylint: disable=g-import-not-at-top
  _, _, graphs = _sirens()
  batch = gmn_jax.batch(graphs[:2])
  index = graph_index(batch)
  rng = np.random.default_rng(1)
  nodes = rng.normal(size=(int(np.sum(batch.n_node)), 5)).astype(np.float32)
  edges = rng.normal(size=(int(np.sum(batch.n_edge)), 5)).astype(np.float32)
  shapes = lambda depth: jax.tree.map(lambda a: a.shape, jax.eval_shape(
      Readout(out_features=3, hidden=7, pool='output', depth=depth).init, jax.random.key(0),
      batch, index, nodes, edges)['params']['graph_mlp'])
  assert shapes(1) == {'Dense_0': {'kernel': (5, 7), 'bias': (7,)},
                       'Dense_1': {'kernel': (7, 3), 'bias': (3,)}}
  deep = shapes(2)
  assert deep['Dense_1']['kernel'] == (7, 7) and deep['Dense_2']['kernel'] == (7, 3)
  model = metanets.tiny('nggnn', readout_depth=2)
  assert 'Dense_2' in jax.eval_shape(model.init, jax.random.key(0),
                                     graphs[0])['params']['readout']['graph_mlp']

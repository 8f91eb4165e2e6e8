"""Neural graphs' INR perturbations on encoded SIREN graphs (`perturb_inr`): each part does
what it says on the function the INR computes or on its layers' values."""

import types

import jax
import jraph
import numpy as np
import pytest

from gmn_jax.tasks.inr_classification.augment import InrPerturbation, perturb_inr
from gmn_jax.training.encoding import Architecture, encode_architectures
from gmn_jax.zoos.inr import siren as siren_lib

OFF = InrPerturbation(translation=0.0, rotation_degrees=0.0, noise=0.0, drop_rate=0.0,
                      first_scale=0.0)


@pytest.fixture(scope='module')
def siren_graphs():
  model = siren_lib.Siren(hidden=(16, 16), omega0=8.0)
  coords = np.zeros((1, 2), np.float32)
  one = model.init(jax.random.key(0), coords)
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda a: rng.normal(0, 0.5, (3,) + a.shape).astype(np.float32), one)
  graphs = encode_architectures([Architecture('siren', model, variables, {'y': np.zeros(3)})],
                                coords, 'y', max_abs_param=None).graphs
  return model, graphs


@pytest.mark.slow  # tracing the SIREN: ~6 s under load
def test_translation_into_the_first_biases_shifts_the_input(siren_graphs):
  """Drawn to reach the first biases only (depth 1): the perturbed INR is the INR on inputs
  shifted by the t drawn first."""
  model, graphs = siren_graphs
  g = graphs.graph(0)
  def depth(seed):  # perturb_inr's first draws: t, then the depth
    rng = np.random.default_rng(seed)
    rng.uniform(-0.25, 0.25, 2)
    return rng.integers(1, 3)
  seed = next(s for s in range(100) if depth(s) == 1)
  out = perturb_inr(g, np.random.default_rng(seed), InrPerturbation(
      translation=0.25, rotation_degrees=0.0, noise=0.0, drop_rate=0.0, first_scale=0.0))
  t = np.random.default_rng(seed).uniform(-0.25, 0.25, 2)
  x = np.random.default_rng(1).uniform(-1, 1, (20, 2)).astype(np.float32)
  pg = graphs.templates[0]
  shifted = model.apply(pg.decode(out), x)
  np.testing.assert_allclose(shifted, model.apply(pg.decode(g), x + t), atol=1e-5)
  assert np.abs(np.asarray(shifted) - np.asarray(model.apply(pg.decode(g), x))).max() > 1e-3


def _mlp_graph(layout=(2, 16, 16, 1)):
  """A 2-16-16-1 MLP's graph by hand (the fields `perturb_inr` reads), random values."""
  layer = np.concatenate([np.full(n, k) for k, n in enumerate(layout)])
  start = np.concatenate([[0], np.cumsum(layout)])
  pairs = [(i, j) for k in range(len(layout) - 1) for i in range(start[k], start[k + 1])
           for j in range(start[k + 1], start[k + 2])]
  senders, receivers = (np.array(a) for a in zip(*pairs))
  rng = np.random.default_rng(0)
  position = np.where(layer == 0, np.arange(len(layer)), -1)
  return jraph.GraphsTuple(
      nodes={'layer': layer, 'position': position,
             'param': np.where(layer[:, None] > 0, rng.normal(size=(len(layer), 1)),
                               0).astype(np.float32)},
      edges={'weight': rng.normal(size=(len(senders), 1)).astype(np.float32)}, senders=senders,
      receivers=receivers, n_node=np.array([len(layer)]), n_edge=np.array([len(senders)]),
      globals=None)


def test_rotation_shift_dropout_and_scale_touch_what_they_should():
  g = _mlp_graph()
  w, b = np.asarray(g.edges['weight'])[:, 0], np.asarray(g.nodes['param'])[:, 0]
  layer = np.asarray(g.nodes['layer'])
  edge_layer, receivers = layer[np.asarray(g.senders)], np.asarray(g.receivers)
  first = edge_layer == 0
  norms = lambda v: np.bincount(receivers[first], v[first] ** 2, minlength=len(layer))
  # rotation: each first-layer neuron keeps the norm of its two input weights; the rest stays
  rot = perturb_inr(g, np.random.default_rng(2), OFF.__class__(**{**OFF.__dict__,
                                                                 'rotation_degrees': 45.0}))
  rw = np.asarray(rot.edges['weight'])[:, 0]
  np.testing.assert_allclose(norms(rw), norms(w), rtol=1e-5)
  assert not np.allclose(rw[first], w[first])
  np.testing.assert_array_equal(rw[~first], w[~first])
  np.testing.assert_array_equal(np.asarray(rot.nodes['param'])[:, 0], b)
  # shift: each layer's weights move by a tenth of their deviation; the output bias stays
  shift = perturb_inr(g, np.random.default_rng(2), OFF.__class__(**{**OFF.__dict__,
                                                                   'noise': 0.1}))
  sw, sb = np.asarray(shift.edges['weight'])[:, 0], np.asarray(shift.nodes['param'])[:, 0]
  for k in range(3):
    np.testing.assert_allclose(sw[edge_layer == k] - w[edge_layer == k],
                               0.1 * w[edge_layer == k].std(ddof=1), rtol=1e-4)
  np.testing.assert_allclose(sb[layer == 1] - b[layer == 1], 0.1 * b[layer == 1].std(ddof=1),
                             rtol=1e-4)
  assert sb[layer == 3] == b[layer == 3]
  # dropout: zeros, survivors scaled up; first-layer scale: one factor in [0.8, 1.2]
  drop = perturb_inr(g, np.random.default_rng(3), OFF.__class__(**{**OFF.__dict__,
                                                                  'drop_rate': 0.5}))
  dw = np.asarray(drop.edges['weight'])[:, 0]
  assert 0.35 < np.mean(dw == 0) < 0.65
  np.testing.assert_allclose(dw[dw != 0], 2 * w[dw != 0], rtol=1e-6)
  scaled = perturb_inr(g, np.random.default_rng(4), OFF.__class__(**{**OFF.__dict__,
                                                                    'first_scale': 0.2}))
  ratio = np.asarray(scaled.edges['weight'])[first, 0] / w[first]
  assert np.ptp(ratio) < 1e-5 and 0.8 <= ratio[0] <= 1.2 and ratio[0] != 1.0
  with pytest.raises(ValueError, match='one weight per edge'):
    perturb_inr(g._replace(edges={**g.edges, 'weight': np.zeros((len(w), 2), np.float32)}),
                np.random.default_rng(0))


def test_graph_set_applies_a_perturbation_only_when_augmenting():
  """`GraphSet.graph(..., perturb=, permute=False)`: the perturbation alone, drawn from the
  same stream; no `rng`, no perturbation."""
  from gmn_jax.training.graph_set import GraphSet  # pylint: disable=g-import-not-at-top
  g = _mlp_graph()
  stacked = jax.tree.map(lambda a: np.stack([a, a]), g)
  size = types.SimpleNamespace(n_node=int(g.n_node[0]), n_edge=int(g.n_edge[0]))  # no trace
  graphs = GraphSet([size], [stacked], np.zeros(2, int), np.arange(2), np.zeros(2))
  got = graphs.graph(1, np.random.default_rng(7), perturb=perturb_inr, permute=False)
  want = perturb_inr(g, np.random.default_rng(7))
  np.testing.assert_array_equal(got.edges['weight'], want.edges['weight'])
  np.testing.assert_array_equal(got.nodes['param'], want.nodes['param'])
  assert not np.array_equal(got.edges['weight'], g.edges['weight'])
  np.testing.assert_array_equal(graphs.graph(1, perturb=perturb_inr).edges['weight'],
                                g.edges['weight'])

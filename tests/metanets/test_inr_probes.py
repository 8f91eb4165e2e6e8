"""Learned INR probes: the activations read off a SIREN's graph are the SIREN's own, and they
move with the symmetries (hidden permutations permute them, sine sign flips negate the flipped
neuron's); a change that is not a symmetry changes the INR's output values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax.graphs.architecture import NodeType
from gmn_jax.graphs.scaling import apply_factors, random_factors, scaling_kinds
from gmn_jax.metanets.inr_probes import LearnedProbes, check_siren_graph, siren_probe_values
from gmn_jax.zoos.inr import siren

MODEL = siren.Siren(hidden=(8, 8), omega0=30.0, output_offset=0.5, zero_bias=False)
COORDS = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)


def _graph():
  params = MODEL.init(jax.random.key(0), COORDS)
  pg = gmn_jax.trace(MODEL, params, COORDS[:1])
  return pg, params, pg.encode(params)


# One compiled program for every graph of these tests (they share one shape).
_probe_values = jax.jit(siren_probe_values, static_argnums=(2, 3, 4))


def _values(graph):
  return np.asarray(_probe_values(graph, jnp.asarray(COORDS), 30.0, 3, 0.5))


def test_probe_values_are_the_siren_activations():
  pg, params, graph = _graph()
  check_siren_graph(pg)
  values = _values(graph)
  out = values[np.asarray(graph.nodes['type']) == NodeType.OUTPUT]
  np.testing.assert_allclose(out[0], np.asarray(MODEL.apply(params, COORDS))[:, 0], atol=1e-5)
  inputs = np.asarray(graph.nodes['type']) == NodeType.INPUT
  np.testing.assert_array_equal(values[inputs], COORDS.T)


def test_probe_values_move_with_permutations_and_sign_flips():
  pg, _, graph = _graph()
  values = _values(graph)
  rng = np.random.default_rng(1)
  factors = random_factors(scaling_kinds(pg), rng)
  assert (factors == -1).any()
  moved = pg.random_symmetry(3).apply_graph(apply_factors(graph, factors))
  expected = pg.random_symmetry(3).apply_graph(
      apply_factors(graph._replace(nodes={**graph.nodes, 'probe': values,
                                          'probe_mask': np.ones_like(values, bool)}), factors))
  np.testing.assert_allclose(_values(moved), np.asarray(expected.nodes['probe']), atol=1e-5)
  # Negative twin: swapping the two input coordinates is not a symmetry.
  swapped = graph._replace(nodes={**graph.nodes,
                                  'position': np.where(np.asarray(graph.nodes['type']) == 0,
                                                       1 - np.asarray(graph.nodes['position']),
                                                       np.asarray(graph.nodes['position']))})
  output = np.asarray(graph.nodes['type']) == NodeType.OUTPUT
  assert np.abs(_values(swapped)[output] - values[output]).max() > 1e-2


@pytest.mark.slow  # ~40 s
def test_learned_probes_keep_a_metanetwork_permutation_invariant():
  pg, _, graph = _graph()
  budget = gmn_jax.budget_for(pg, 2)
  model = LearnedProbes(gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=1, readout_hidden=8),
                        n_probes=4, omega0=30.0, n_layers=3, output_offset=0.5)
  # The permutation alone is a symmetry of GMN; the sign flip is not (GMN is not
  # sign-invariant), so compare a permuted copy only.
  permuted = pg.random_symmetry(5).apply_graph(graph)
  both = gmn_jax.batch([graph, permuted], budget)
  params = jax.jit(model.init)(jax.random.key(0), both)
  assert params['params']['coordinates'].shape == (4, 2)

  def first_output(p):
    out = model.apply(p, both).globals
    return out[0, 0], out

  # One compiled program: both graphs' outputs and the gradient of the first one.
  grads, out2 = jax.jit(jax.grad(first_output, has_aux=True))(params)
  np.testing.assert_allclose(np.asarray(out2[0]), np.asarray(out2[1]), atol=1e-5)
  # The coordinates learn: the output depends on them.
  assert np.abs(np.asarray(grads['params']['coordinates'])).max() > 0

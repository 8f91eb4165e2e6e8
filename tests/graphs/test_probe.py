"""Probe features: each neuron's value on probe inputs, read off the traced program.

On every test model they move with the symmetries (rows permute with the neurons, and scale
or flip with rescaled ReLU or flipped tanh/sin neurons), output neurons hold the model's
output, and a non-symmetry (a hidden neuron's incoming weights swapped alone) is seen. A GMN
reading them stays invariant; changing the probe inputs changes its prediction.
"""

import jax
import jax.numpy as jnp
from tests.support import models
import numpy as np
import pytest

import gmn_jax
import gmn_jax.testing as gt
from tests.support import tiny_metanets as metanets
from gmn_jax.graphs import scaling


def _probe_inputs(name: str, k: int = 3, seed: int = 0) -> tuple[jax.Array, ...]:
  """K probes shaped like the model's example inputs: noise for floats, tokens for integers."""
  rng = np.random.default_rng(seed)
  out = []
  for a in models.get(name)[2]:
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.integer):
      out.append(jnp.asarray(rng.integers(0, int(a.max()) + 1, (k,) + a.shape), a.dtype))
    else:
      out.append(jnp.asarray(rng.standard_normal((k,) + a.shape), a.dtype))
  return tuple(out)


def _probe(pg, variables, xs) -> np.ndarray:
  return np.asarray(pg.encode(variables, xs).nodes['probe'])


# The largest models (20-30 s each) run in the slow tier.
_SLOW_PROBES = ('vit', 'text_transformer', 'resnet')


@pytest.mark.parametrize('name', [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW_PROBES
                                  else n for n in models.ALL])
def test_probes_follow_the_symmetries(traced, name):
  pg, variables, _ = traced(name)
  xs = _probe_inputs(name)
  probe = _probe(pg, variables, xs)
  assert probe.shape == (pg.n_node, 3) and np.isfinite(probe).all()
  assert np.abs(probe).max() > 0
  for seed in (0, 1):
    sym = pg.random_symmetry(seed)
    np.testing.assert_allclose(_probe(pg, sym.apply(variables), xs),
                               np.asarray(sym.apply_nodes(probe)), atol=1e-5)
  factors = scaling.random_factors(scaling.scaling_kinds(pg), np.random.default_rng(0), 3.0)
  rescaled = pg.decode(scaling.apply_factors(pg.encode(variables), factors))
  np.testing.assert_allclose(_probe(pg, rescaled, xs), factors[:, None] * probe, atol=1e-5)
  # apply_factors moves a probed graph's probe values exactly as re-probing does
  moved = scaling.apply_factors(pg.encode(variables, xs), factors)
  np.testing.assert_allclose(np.asarray(moved.nodes['probe']), factors[:, None] * probe)


@pytest.mark.parametrize('name', ['mlp', 'cnn_gap', 'vit'])
def test_output_neurons_hold_the_model_output(traced, name):
  pg, variables, fn = traced(name)
  args = models.get(name)[2]
  xs = tuple(jnp.stack([a, a]) for a in args)  # two probes: the example input, twice
  graph = pg.encode(variables, xs)
  out = np.asarray(fn(variables))
  expected = out.reshape(-1, out.shape[-1]).mean(0)  # a neuron's mean over batch and positions
  outputs = np.flatnonzero(np.asarray(pg.node_type) == int(gmn_jax.NodeType.OUTPUT))
  position = np.asarray(graph.nodes['position'])[outputs]
  for k in range(2):
    np.testing.assert_allclose(np.asarray(graph.nodes['probe'])[outputs, k], expected[position],
                               rtol=1e-5, atol=1e-6)
  assert np.asarray(graph.nodes['probe_mask'])[outputs].all()


@pytest.mark.parametrize('name', ['mlp', 'cnn_gap'])
def test_a_non_symmetry_changes_the_probes(traced, name):
  pg, variables, _ = traced(name)
  xs = _probe_inputs(name)
  sym = gt.non_symmetry(pg, variables, 0, kind='incoming')
  swapped = pg.decode(sym.apply_graph(pg.encode(variables)))  # incoming weights swapped alone
  moved = np.asarray(sym.apply_nodes(_probe(pg, variables, xs)))
  assert np.abs(_probe(pg, swapped, xs) - moved).max() > 1e-3


def test_a_gmn_reading_probes_is_invariant_and_uses_them():
  pg, variables = metanets.case('cnn_gap')
  xs = _probe_inputs('cnn_gap')
  model = metanets.tiny('gmn')
  params = metanets.random_params(model, pg.encode(variables, xs))
  predict = jax.jit(lambda g: model.apply(params, g).globals)
  reference = np.asarray(predict(pg.encode(variables, xs)))
  for seed in (0, 1):
    permuted = pg.random_symmetry(seed).apply(variables)
    np.testing.assert_allclose(np.asarray(predict(pg.encode(permuted, xs))), reference,
                               atol=1e-5)
  other = np.asarray(predict(pg.encode(variables, _probe_inputs('cnn_gap', seed=1))))
  assert np.abs(other - reference).max() > 1e-4


def test_probe_errors_are_clear(traced):
  pg, variables, _ = traced('mlp')
  x = models.get('mlp')[2][0]
  with pytest.raises(ValueError, match=r'must be \[K, \*'):
    pg.encode(variables, x)  # no K axis
  with pytest.raises(ValueError, match='different fields'):
    gmn_jax.batch([pg.encode(variables), pg.encode(variables, x[None])])

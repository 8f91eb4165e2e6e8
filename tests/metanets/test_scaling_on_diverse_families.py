"""Scale and sign symmetries on the diverse-architecture families (`zoos.diverse_models`):
what the tracer says admits a factor really does (the network's own output is unchanged under
random per-neuron factors, and wrong factors change it), and ScaleGMN is invariant to those
factors and to permutations within 1e-4, with negative twins. Families in which the tracer
grants no neuron a factor (BatchNorm or GroupNorm before the activation, the zoo's ResNet with
its BatchNorms and residual stream) are refused by the scaling check and stay plain
permutation-invariant.

Activations: ReLU (positive scales) everywhere, and tanh (signs) in the MLP and the CNN
without a norm, so both kinds are checked on real zoo architectures.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

import gmn_jax
from gmn_jax import testing
from gmn_jax.graphs import scaling
from gmn_jax.zoos.diverse.models import DiverseNet, NetSpec
from tests.support import tiny_metanets

# Tracing every family here takes ~85 s (cnn1d ~70 s); test_scalegmn.py covers ScaleGMN fast.
pytestmark = pytest.mark.slow

X = np.random.default_rng(0).standard_normal((4, 8, 8, 1)).astype(np.float32)
# (spec, activation, whether some neuron admits a factor)
CASES = {
    'mlp relu': (NetSpec('mlp', 4, 2), 'relu', True),
    'mlp tanh': (NetSpec('mlp', 4, 2), 'tanh', True),
    'cnn relu': (NetSpec('cnn', 4, 2), 'relu', True),
    'cnn tanh': (NetSpec('cnn', 4, 1), 'tanh', True),
    'cnn group': (NetSpec('cnn', 4, 1, 'group'), 'relu', False),
    'cnn batch': (NetSpec('cnn', 4, 1, 'batch'), 'relu', False),
    'cnn1d': (NetSpec('cnn1d', 4, 2, kernel=3), 'relu', True),
    'deepsets': (NetSpec('deepsets', 4, 2), 'relu', True),
    'resnet': (NetSpec('resnet', 4, 1), 'relu', False),
    'vit': (NetSpec('vit', 4, 1, heads=2), 'relu', True),
}


@functools.cache
def _case(name: str):
  """(model, variables, graph), variables randomised so no two neurons are equal by chance."""
  spec, activation, _ = CASES[name]
  model = DiverseNet(spec, activation=activation)
  variables = model.init(jax.random.key(1), X[:1])
  rng = np.random.default_rng(2)
  variables = jax.tree.map(
      lambda a: np.asarray(a + 0.3 * rng.standard_normal(a.shape), np.float32), variables)
  if 'batch_stats' in variables:
    variables['batch_stats'] = jax.tree.map(np.abs, variables['batch_stats'])
  return model, variables, gmn_jax.trace(model, variables, X[:1])


@functools.cache
def _budget() -> gmn_jax.Budget:
  """One padded size for every family, so that ScaleGMN compiles once."""
  return gmn_jax.budget_for([_case(name)[2] for name in CASES], 1)


@functools.cache
def _scalegmn():
  budget = _budget()
  net = gmn_jax.ScaleGMN(hidden_dim=8, num_layers=1, readout_hidden=8,
                         max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  _, variables, pg = _case('mlp relu')
  example = gmn_jax.batch([gmn_jax.with_scaling_kinds(pg.encode(variables), pg)], budget)
  return tiny_metanets.random_params(net, example), jax.jit(net.apply)


def _metanet(pg):
  params, apply = _scalegmn()
  return lambda graph: apply(params, gmn_jax.batch([gmn_jax.with_scaling_kinds(graph, pg)],
                                                   _budget()))


@pytest.mark.parametrize('name', CASES)
def test_factors_the_tracer_admits_keep_the_network_and_scalegmn_invariant(name):
  model, variables, pg = _case(name)
  network = jax.jit(lambda graph: model.apply(pg.decode(graph), X))
  metanet = _metanet(pg)
  if CASES[name][2]:
    testing.assert_scale_invariant(network, pg, variables, key=0, n=2, max_scale=8.0)
    testing.assert_scale_invariant(metanet, pg, variables, key=0, n=2, max_scale=8.0)
  else:
    for fn in (network, metanet):
      with pytest.raises(ValueError, match='no neuron admits'):
        testing.assert_scale_invariant(fn, pg, variables, key=0)
  testing.assert_not_scale_invariant(network, pg, variables)
  testing.assert_not_scale_invariant(metanet, pg, variables)
  testing.assert_invariant(metanet, pg, variables, key=0, n=1, atol=1e-4, rtol=1e-4)


def test_both_kinds_of_factor_are_checked():
  """The cases above really hold positive-scale and sign neurons (a vacuity guard)."""
  kinds = {name: np.bincount(scaling.scaling_kinds(_case(name)[2]), minlength=3)
           for name in CASES}
  assert kinds['mlp relu'][scaling.SCALE] == 8 and kinds['mlp tanh'][scaling.SIGN] == 8
  assert kinds['cnn tanh'][scaling.SIGN] == 4 and kinds['cnn1d'][scaling.SCALE] == 8
  assert kinds['deepsets'][scaling.SCALE] == 8
  for name, (_, _, admits) in CASES.items():
    assert (kinds[name][scaling.SIGN] + kinds[name][scaling.SCALE] > 0) == admits, name

"""ScaleGMN: invariant to permutations and to the rescalings / sign flips the tracer reads off
each architecture (MLP: ReLU scales, SIREN: sine signs, CNN: ReLU scales per channel, and a
network mixing ReLU, tanh and sine layers); wrong factors change its output; the released
bidirectional variant (backward messages on the forward edge states) is not scale-invariant;
all-zero and near-zero neurons give finite outputs and gradients.

Corner cases: families where no neuron admits a factor (BatchNorm, residual streams,
attention) fall back to plain permutation invariance, and the scaling checks refuse them.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax import testing
from gmn_jax.graphs import scaling
from gmn_jax.metanets.scale_layers import ScaleEquivariant
from tests.support import tiny_metanets


class Hetero(nn.Module):
  """Dense 3 -> 4 relu -> 4 tanh -> 4 sin -> 2: ScaleGMN's "hetero" case in one graph."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.relu(nn.Dense(4)(x))
    x = jnp.tanh(nn.Dense(4)(x))
    x = jnp.sin(nn.Dense(4)(x))
    return nn.Dense(2)(x)


@functools.lru_cache(maxsize=None)
def _case(name: str):
  if name != 'hetero':
    return tiny_metanets.case(name)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3)), jnp.float32)
  variables = Hetero().init(jax.random.key(0), x)
  return gmn_jax.trace(Hetero(), variables, x), variables


_NAMES = ('mlp', 'siren', 'cnn_gap', 'hetero', 'cnn_bn', 'vit')


@functools.lru_cache(maxsize=None)
def _budget() -> gmn_jax.Budget:
  """One padded size for every test graph, so each network variant compiles once."""
  return gmn_jax.budget_for([_case(name)[0] for name in _NAMES], 1)


@functools.lru_cache(maxsize=None)
def _network(reciprocal_backward: bool = True):
  """A one-block ScaleGMN-B (its forward messages are ScaleGMN's), its random parameters
  and its jitted apply."""
  budget = _budget()
  net = gmn_jax.ScaleGMN(hidden_dim=8, num_layers=1, readout_hidden=8, bidirectional=True,
                         reciprocal_backward=reciprocal_backward,
                         max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  pg, variables = _case('mlp')
  example = gmn_jax.batch([gmn_jax.with_scaling_kinds(pg.encode(variables), pg)], budget)
  return net, tiny_metanets.random_params(net, example), jax.jit(net.apply)


def _scalegmn(pg, reciprocal_backward: bool = True):
  """The network as a function of one graph of `pg` (padded to the shared budget)."""
  _, params, apply = _network(reciprocal_backward)
  return lambda graph: apply(params, gmn_jax.batch([gmn_jax.with_scaling_kinds(graph, pg)],
                                                   _budget()))


@pytest.mark.parametrize('name', ['mlp', 'siren', 'cnn_gap', 'hetero'])
def test_invariant_to_scalings_and_permutations(name):
  pg, variables = _case(name)
  fn = _scalegmn(pg)
  testing.assert_scale_equivariant(fn, pg, variables, key=0)
  testing.assert_not_scale_invariant(fn, pg, variables)
  testing.assert_invariant(fn, pg, variables, key=0, n=2, atol=1e-4, rtol=1e-4)
  testing.assert_not_invariant(fn, pg, variables, key=0)


def test_hetero_graph_has_every_kind():
  pg, _ = _case('hetero')
  kinds = scaling.scaling_kinds(pg)
  assert np.bincount(kinds, minlength=3)[[scaling.SIGN, scaling.SCALE]].tolist() == [8, 4]


@pytest.mark.parametrize('name', ['cnn_bn', 'vit'])
def test_families_without_factors_stay_permutation_invariant(name):
  pg, variables = _case(name)
  fn = _scalegmn(pg)
  testing.assert_invariant(fn, pg, variables, key=0, n=2, atol=1e-4, rtol=1e-4)
  testing.assert_not_scale_invariant(fn, pg, variables)
  with pytest.raises(ValueError, match='no neuron admits'):
    testing.assert_scale_invariant(fn, pg, variables, key=0)


def test_released_bidirectional_variant_is_not_scale_invariant():
  pg, variables = _case('mlp')
  fn = _scalegmn(pg, reciprocal_backward=False)
  with pytest.raises(AssertionError, match='not invariant under scaling'):
    testing.assert_scale_invariant(fn, pg, variables, key=0)


def test_scaling_checks_on_the_network_itself():
  """The traced network's own output is exactly scale-invariant and changes under wrong
  factors: the checks pass it; its raw weights are not invariant: the check fails them."""
  pg, variables = _case('hetero')
  x = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)), jnp.float32)
  network = jax.jit(lambda graph: Hetero().apply(pg.decode(graph), x))
  testing.assert_scale_invariant(network, pg, variables, key=1)
  testing.assert_not_scale_invariant(network, pg, variables)
  with pytest.raises(AssertionError, match='not invariant under scaling'):
    testing.assert_scale_invariant(lambda g: g.edges['weight'], pg, variables, key=1)


def test_near_zero_neurons_give_finite_outputs_and_gradients():
  pg, variables = _case('mlp')
  graph = pg.encode(variables)
  kinds = scaling.scaling_kinds(pg)
  dead, tiny = np.flatnonzero(kinds == scaling.SCALE)[:2]
  factors = np.ones(pg.n_node, np.float32)
  factors[dead], factors[tiny] = 0.0, 1e-30  # all incoming weights and bias 0 / ~1e-31
  weight = np.asarray(graph.edges['weight']) * factors[np.asarray(graph.receivers)][:, None]
  param = np.asarray(graph.nodes['param']) * factors[:, None]
  graph = graph._replace(edges={**graph.edges, 'weight': weight.astype(np.float32)},
                         nodes={**graph.nodes, 'param': param.astype(np.float32)})
  graph = gmn_jax.batch([gmn_jax.with_scaling_kinds(graph, pg)], _budget())
  net, params, _ = _network()
  loss = lambda p: jnp.sum(net.apply(p, graph).globals ** 2)
  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  assert np.isfinite(float(value))
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_missing_scaling_kinds_is_a_clear_error():
  pg, variables = _case('mlp')
  net = gmn_jax.ScaleGMN(hidden_dim=8, num_layers=1)
  with pytest.raises(ValueError, match='with_scaling_kinds'):
    jax.eval_shape(net.init, jax.random.key(0), pg.encode(variables))


def test_blocks_grow_linearly_in_their_states():
  """The failure on the default CNN zoo (loss not finite at the first step): an invariant
  gate g(x) that grows with x makes `Γx ⊙ g(x)` quadratic, and three blocks overflowed float32.
  Now g is bounded (a unit direction and a log-norm), so the block is at most linear in x for
  every kind of row: no factor, sign and scale."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 8)), jnp.float32)
  has_scale, has_sign = jnp.array([False, False, True]), jnp.array([False, True, False])
  block = ScaleEquivariant(8, 8)
  params = block.init(jax.random.key(0), x, has_scale, has_sign)
  small = np.abs(np.asarray(block.apply(params, x, has_scale, has_sign)))
  c = 1e20  # a quadratic block gives ~1e40, past float32's 3e38
  large = np.abs(np.asarray(block.apply(params, c * x, has_scale, has_sign)))
  assert np.all(np.isfinite(large))
  assert large.max() <= 1e3 * c * max(small.max(), 1.0), (large.max(), small.max())

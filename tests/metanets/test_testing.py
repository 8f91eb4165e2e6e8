"""`gmn_jax.testing`: the checks accept what they should and reject what they should.

Cheap functions stand in for metanetworks: the sum of all parameters (invariant under every
permutation of values, so blind to non-symmetries too), the first edge's weight (not
invariant), the identity on graphs (equivariant) and a function that mixes in each node's
index (not equivariant).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
import gmn_jax.testing as gt
from tests.support import tiny_metanets as metanets
from tests.support import models


def _sum_of_parameters(g):
  return jnp.sum(g.edges['weight']) + jnp.sum(g.nodes['param'])


def _first_weight(g):
  return g.edges['weight'][0]


def _identity(g):
  return g


def _index_mixing(g):
  n = g.nodes['param'].shape[0]
  param = g.nodes['param'] + jnp.arange(n, dtype=g.nodes['param'].dtype)[:, None]
  return g._replace(nodes={**g.nodes, 'param': param})


def _position_aware(g):
  """Invariant to true symmetries, sensitive to which input neuron holds which weights."""
  where = jnp.asarray(g.nodes['position'], jnp.float32)[g.senders] + 2.0
  return jnp.sum(where[:, None] * g.edges['weight'] ** 2)


@pytest.mark.parametrize('name', ['mlp', 'cnn_bn', 'resnet', 'vit'])
def test_invariance_checks(name):
  pg, variables = metanets.case(name)
  gt.assert_invariant(_sum_of_parameters, pg, variables, jax.random.key(0))
  with pytest.raises(AssertionError, match='not invariant'):
    gt.assert_invariant(_first_weight, pg, variables, 0, n=5)
  # The sum of parameters does not see a non-symmetry either: the negative check says so.
  with pytest.raises(AssertionError, match='did not change'):
    gt.assert_not_invariant(_sum_of_parameters, pg, variables, 0)
  gt.assert_not_invariant(lambda g: g.edges['weight'], pg, variables, 0, kind='incoming')


@pytest.mark.parametrize('name', ['mlp', 'cnn_bn', 'vit'])
def test_equivariance_checks(name):
  pg, variables = metanets.case(name)
  gt.assert_equivariant(_identity, pg, variables, 0)
  with pytest.raises(AssertionError, match='not equivariant'):
    gt.assert_equivariant(_index_mixing, pg, variables, 0)
  # The identity moves with any permutation of values, so it cannot tell a non-symmetry.
  with pytest.raises(AssertionError, match='as if it were a symmetry'):
    gt.assert_not_equivariant(_identity, pg, variables, 0, kind='incoming')


def test_position_aware_function_passes_both_checks():
  pg, variables = metanets.case('mlp')
  gt.assert_invariant(_position_aware, pg, variables, 1)
  gt.assert_not_invariant(_position_aware, pg, variables, 1, kind='inputs')


@pytest.mark.parametrize('kind', gt.NON_SYMMETRIES)
def test_non_symmetries_change_the_function(kind):
  """What `non_symmetry` returns really changes what the network computes, while a random
  symmetry does not."""
  name = 'mlp'
  pg, variables = metanets.case(name)
  case = models.get(name)
  before = np.asarray(models.apply(case))
  bad = gt.non_symmetry(pg, variables, 3, kind)
  after = np.asarray(models.apply(case._replace(variables=bad.apply(variables))))
  assert not np.allclose(after, before, atol=1e-5)
  same = pg.random_symmetry(3).apply(variables)
  np.testing.assert_allclose(models.apply(case._replace(variables=same)), before, atol=1e-5)


def test_architecture_without_symmetry_is_reported():
  pg, variables = metanets.single_edge()
  with pytest.raises(ValueError, match='identity'):
    gt.assert_invariant(_sum_of_parameters, pg, variables, 0)
  with pytest.raises(ValueError, match='no non-symmetry'):
    gt.non_symmetry(pg, variables, 0)


def test_checks_accept_padded_outputs():
  """A metanetwork that pads its input to a budget returns a longer graph: the checks read
  its first graph."""
  pg, variables = metanets.case('cnn_gap')
  budget = gmn_jax.budget_for(pg, 2)
  budget = budget._replace(kernel_size=budget.kernel_size + 3)
  padded = lambda g: gmn_jax.batch([g], budget)
  gt.assert_equivariant(padded, pg, variables, 0, n=2)

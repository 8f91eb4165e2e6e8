"""The learned optimizer: permutation-equivariant updates on every model family, with the
negative twin (a non-symmetry of the optimizee does not simply move the update), and the
optax contract (errors that say what to do).

One GMN rule's meta-parameters serve every family (the rule does not depend on the
optimizee's sizes); the per-parameter rules are checked on one family.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
import pytest

import gmn_jax
import gmn_jax.testing as gt
from gmn_jax.training.learned_optimizer import LearnedOptimizer, graph_of_update
from gmn_jax.training.update_rules import GraphRule, PerParameterLSTM, PerParameterMLP

FAMILIES = ('mlp', 'cnn_bn', 'resnet', 'vit')
_SLOTS = dict(edge_readout='direct', max_kernel_size=27, max_param_size=24)


def _graph_rule(kind: str) -> GraphRule:
  if kind == 'gmn':
    return GraphRule(gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=1, **_SLOTS), hidden=(8,))
  return GraphRule(gmn_jax.NGGNN(hidden_dim=8, num_layers=1, **_SLOTS), hidden=(8,))


@functools.lru_cache(maxsize=None)
def _meta_params(kind: str, traced_first):
  return LearnedOptimizer(_graph_rule(kind), traced_first).init_meta_params(jax.random.key(0))


def _check(rule, meta_params, pg, variables, apply):
  loss = lambda v: jnp.mean(apply(v) ** 2)
  fn = jax.jit(graph_of_update(LearnedOptimizer(rule, pg), loss, meta_params))
  gt.assert_equivariant(fn, pg, variables, jax.random.key(1), n=2)
  gt.assert_not_equivariant(fn, pg, variables, jax.random.key(2))


@pytest.mark.parametrize('family', [pytest.param(f, marks=pytest.mark.slow)  # ~25 s each
                                    if f in ('resnet', 'vit') else f for f in FAMILIES])
def test_gmn_update_is_equivariant(traced, family):
  pg, variables, apply = traced(family)
  meta_params = _meta_params('gmn', traced('mlp')[0])
  _check(_graph_rule('gmn'), meta_params, pg, variables, apply)


@pytest.mark.parametrize('kind,family', [
    pytest.param('nggnn', 'cnn_bn', marks=pytest.mark.slow),  # ~10 s; NG-GNN's symmetry is tested
    ('mlp', 'mlp'), ('lstm', 'mlp')])
def test_other_rules_are_equivariant(traced, kind, family):
  pg, variables, apply = traced(family)
  rule = {'mlp': PerParameterMLP((8,)), 'lstm': PerParameterLSTM(4)}.get(kind) or _graph_rule(kind)
  meta_params = LearnedOptimizer(rule, pg).init_meta_params(jax.random.key(0))
  _check(rule, meta_params, pg, variables, apply)


def test_optax_contract(traced):
  pg, variables, apply = traced('mlp')
  lopt = LearnedOptimizer(PerParameterMLP((8,)), pg)
  tx = lopt.as_optax(lopt.init_meta_params(jax.random.key(0)))
  state = tx.init(variables)
  grads = jax.grad(lambda v: jnp.mean(apply(v) ** 2))(variables)
  with pytest.raises(ValueError, match='reads the parameters'):
    tx.update(grads, state)
  updates, state = jax.jit(tx.update)(grads, state, variables)
  assert jax.tree.structure(updates) == jax.tree.structure(variables)
  assert int(state.step) == 1
  moved = optax.apply_updates(variables, updates)
  assert any(not jnp.array_equal(a, b) for a, b in
             zip(jax.tree.leaves(moved), jax.tree.leaves(variables)))
  with pytest.raises(ValueError, match='structure|shape'):
    tx.update(grads['params'], state, variables['params'])

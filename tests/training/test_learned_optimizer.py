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
import numpy as np
import optax
import pytest

import gmn_jax
import gmn_jax.testing as gt
from gmn_jax.training import optimizer_features as F
from gmn_jax.training.learned_optimizer import LearnedOptimizer, Stabilisers, graph_of_update
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


def _check(rule, meta_params, pg, variables, apply, stabilisers=Stabilisers()):
  loss = lambda v: jnp.mean(apply(v) ** 2)
  fn = jax.jit(graph_of_update(LearnedOptimizer(rule, pg, stabilisers), loss, meta_params))
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


@pytest.mark.parametrize('kind,family', [('gmn', 'cnn_bn'), ('mlp', 'mlp'), ('lstm', 'mlp')])
def test_stabilised_rules_are_equivariant(traced, kind, family):
  """Per-tensor features, the step count and the clip keep every rule's symmetry (the
  per-tensor root mean square is a permutation invariant; a BatchNorm'd bias's float-noise
  gradient stays near zero)."""
  pg, variables, apply = traced(family)
  rule = {'mlp': PerParameterMLP((8,)), 'lstm': PerParameterLSTM(4)}.get(kind) or _graph_rule(kind)
  meta_params = LearnedOptimizer(rule, pg, Stabilisers.lopt()).init_meta_params(
      jax.random.key(0))
  _check(rule, meta_params, pg, variables, apply, Stabilisers.lopt())


_ADAM = Stabilisers(step_scale=1e-3, exp_scale=1e-3, base='adam')


def test_adam_direction_is_optax_adams_with_float_noise_kept_small():
  """The base's moments, bias corrections and direction are optax's Adam (rate 1: the update
  is minus the direction) wherever the gradient is not float noise; a tensor of noise 1e-9
  (a bias before a normalisation) stays near zero instead of Adam's unit steps."""
  rng = np.random.default_rng(0)
  params = {'w': jnp.zeros((5, 3)), 'b': jnp.zeros((3,))}
  ws = jnp.asarray(rng.normal(size=(3, 5, 3)), jnp.float32)

  @jax.jit
  def run(ws):  # one compilation: op-by-op it costs seconds
    adam = optax.adam(1.0)
    state = adam.init(params)
    momenta, second = F.init_momenta(params), jax.tree.map(jnp.zeros_like, params)
    for t in range(3):
      grads = {'w': ws[t], 'b': jnp.full((3,), 1e-9)}
      momenta, second = F.update_momenta(momenta, grads), F.update_second_moment(second, grads)
      direction = F.adam_direction(momenta, second, jnp.int32(t))
      updates, state = adam.update(grads, state, params)
    return direction, updates

  direction, updates = run(ws)
  assert jnp.allclose(direction['w'], -updates['w'], rtol=1e-2)  # the floor: ~1e-3 relative
  assert float(jnp.max(jnp.abs(updates['b']))) > 0.05  # plain Adam blows the noise up
  assert float(jnp.max(jnp.abs(direction['b']))) < 1e-5


@pytest.mark.parametrize('kind,family', [('mlp', 'cnn_bn'), ('gmn', 'cnn_bn'), ('lstm', 'mlp')])
@pytest.mark.slow  # 10-25 s CPU each (compiling); the base's maths is tested fast above
def test_rules_on_an_adam_base_are_equivariant(traced, kind, family):
  """Adam's moments are elementwise and its eps floor a network-wide invariant: the update on
  a permuted optimizee is the permuted update (BatchNorm'd biases' float-noise gradients
  included), and a non-symmetry does not simply move it."""
  pg, variables, apply = traced(family)
  rule = {'mlp': PerParameterMLP((8,)), 'lstm': PerParameterLSTM(4)}.get(kind) or _graph_rule(kind)
  meta_params = LearnedOptimizer(rule, pg, _ADAM).init_meta_params(jax.random.key(0))
  _check(rule, meta_params, pg, variables, apply, _ADAM)


@pytest.mark.slow  # ~10 s CPU (two compilations)
def test_an_adam_base_starts_as_adam_and_is_modulated(traced):
  """Untrained, the rule's steps are Adam's at the base rate within a few percent (the same
  moments, bias corrections and direction as optax's Adam); the rule's magnitude output
  scales them (meta-parameters moved -> steps moved)."""
  pg, variables, apply = traced('mlp')
  loss = lambda v: jnp.mean(apply(v) ** 2)
  rule = PerParameterMLP((8,))
  lopt = LearnedOptimizer(rule, pg, _ADAM)
  meta_params = lopt.init_meta_params(jax.random.key(0))
  adam = optax.adam(_ADAM.base_rate)
  ours, theirs = lopt.as_optax(meta_params), adam
  s_ours, s_theirs = ours.init(variables), theirs.init(variables)
  step = jax.jit(lambda g, s, p: ours.update(g, s, p))
  for _ in range(3):
    grads = jax.grad(loss)(variables)
    u_ours, s_ours = step(grads, s_ours, variables)
    u_theirs, s_theirs = theirs.update(grads, s_theirs, variables)
    variables = optax.apply_updates(variables, u_theirs)
  a, b = (jnp.concatenate([x.ravel() for x in jax.tree.leaves(u)]) for u in (u_ours, u_theirs))
  big = jnp.abs(b) > 0.1 * _ADAM.base_rate  # the eps floor damps only near-zero gradients
  assert int(big.sum()) > 10
  assert float(jnp.max(jnp.abs(a[big] / b[big] - 1))) < 0.5
  assert float(jnp.median(jnp.abs(a[big] / b[big] - 1))) < 0.1
  louder = jax.tree.map(lambda x: 3 * x, meta_params)
  u_louder, _ = step(grads, s_ours._replace(meta_params=louder, step=s_ours.step - 1,
                                           momenta=s_ours.momenta), variables)
  assert not jnp.allclose(jnp.concatenate([x.ravel() for x in jax.tree.leaves(u_louder)]), a)
  with pytest.raises(ValueError, match='base'):
    Stabilisers(base='sgd')


@pytest.mark.slow  # 14-24 s: keeps the fast tier within its 10 minutes
def test_stabilised_steps_are_small_clipped_and_read_the_step_count(traced):
  pg, variables, apply = traced('mlp')
  grads = jax.grad(lambda v: jnp.mean(apply(v) ** 2))(variables)
  rule = PerParameterMLP((8,))
  plain = LearnedOptimizer(rule, pg)
  meta_params = plain.init_meta_params(jax.random.key(0))
  big = lambda u: max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(u))
  lopt = LearnedOptimizer(rule, pg, Stabilisers.lopt())
  lopt_params = lopt.init_meta_params(jax.random.key(0))
  state = lopt.init_state(variables)
  updates, _ = lopt.step(lopt_params, variables, grads, state)
  assert 0 < big(updates) < 0.01
  small = LearnedOptimizer(rule, pg, Stabilisers(step_scale=1e-3, exp_scale=1e-3))
  ratio = big(small.step(meta_params, variables, grads, state)[0]) / big(
      plain.step(meta_params, variables, grads, state)[0])
  assert 0.08 < ratio < 0.12  # the same rule's outputs give 10x smaller steps
  clipped = LearnedOptimizer(rule, pg, Stabilisers(step_scale=10.0, step_clip=1e-3))
  assert big(clipped.step(meta_params, variables, grads, plain.init_state(variables))[0]) \
      == pytest.approx(1e-3)
  later, _ = lopt.step(lopt_params, variables, grads, state._replace(step=jnp.int32(100)))
  assert not all(jnp.allclose(a, b) for a, b in zip(jax.tree.leaves(updates),
                                                      jax.tree.leaves(later)))
  normalised = F.tensor_normalised({'a': jnp.full((3, 2), 1e3), 'b': jnp.full((4, 1), 1e-9)})
  assert jnp.allclose(normalised['a'], 1.0, atol=1e-6) and jnp.max(normalised['b']) < 1e-6
  with pytest.raises(ValueError, match='features'):
    Stabilisers(features='rms')


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

"""A learned optimizer for any architecture, as an optax `GradientTransformation`.

`LearnedOptimizer(rule, pg)` binds an update rule (`update_rules`: a graph metanetwork, or
the per-parameter MLP and LSTM baselines) to one optimizee architecture's `ParameterGraph`.
At each step it updates the momenta, reads the 14 features of every parameter
(`optimizer_features`) into the slots of the optimizee's graph (`pg.encode` of each feature,
so every parameter has exactly one slot), runs the rule and decodes its per-slot output
(scale, magnitude) into the update pytree with `pg.decode`:

    delta_theta = scale * 0.01 * exp(0.01 * magnitude),   theta <- theta + delta_theta

(Kofinas et al. 2024, after Metz et al. 2019). `step` is the pure function meta-training
differentiates; `as_optax(meta_params)` wraps it for any optax training loop:

    pg = gmn_jax.trace(model, variables, x)
    lopt = LearnedOptimizer(GraphRule(gmn_jax.GMN(...)), pg)
    meta_params = lopt.init_meta_params(jax.random.key(0))
    tx = lopt.as_optax(meta_params)
    opt_state = tx.init(variables)
    updates, opt_state = tx.update(grads, opt_state, variables)   # params are required

The optimized pytree must be the one `pg` was traced with (the same collections). One graph
optimizer serves every architecture: meta-parameters do not depend on the optimizee's sizes
(keep K and P within the metanetwork's `max_kernel_size` / `max_param_size`).

Jittable: `init_state`, `step` and the optax transformation; `init_meta_params` is host-side.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import optax

from gmn_jax.graphs.parameter_graph import ParameterGraph
from gmn_jax.training import optimizer_features as F
from gmn_jax.training.update_rules import RuleInputs

STEP_SCALE = 0.01  # delta = scale * STEP_SCALE * exp(STEP_SCALE * magnitude)


class LearnedOptimizerState(NamedTuple):
  """The state of a learned optimizer on one optimizee.

  Attributes:
    momenta: the parameters' pytree with leaves `[*shape, 5]`.
    carry: the rule's recurrent state (the LSTM's; `()` for the others).
    step: int32 scalar, steps taken.
    meta_params: the rule's parameters (held here by `as_optax`; `None` in `step`'s state).
  """

  momenta: Any
  carry: Any
  step: jax.Array
  meta_params: Any = None


class LearnedOptimizer:
  """An update rule bound to an optimizee architecture (see the module docstring).

  Args:
    rule: a module of `gmn_jax.training.update_rules`.
    pg: the optimizee's `ParameterGraph`.
  """

  def __init__(self, rule: nn.Module, pg: ParameterGraph):
    self.rule = rule
    self.pg = pg
    self._shapes = ((pg.n_edge, pg.kernel_size, F.N_FEATURES),
                    (pg.n_node, pg.node_param_size, F.N_FEATURES))

  def _slots(self, tree: Any) -> tuple[jax.Array, jax.Array]:
    """A pytree whose leaves have one trailing channel axis `[*shape, C]` -> edge slots
    `[E, K, C]` and node slots `[N, P, C]`."""
    channels = jax.tree.map(lambda x: jnp.moveaxis(x, -1, 0), tree)
    graphs = jax.vmap(self.pg.encode)(channels)
    return (jnp.moveaxis(graphs.edges['weight'], 0, -1),
            jnp.moveaxis(graphs.nodes['param'], 0, -1))

  def _inputs(self, params: Any, grads: Any, momenta: Any) -> RuleInputs:
    edge_raw, node_raw = self._slots(F.raw_channels(params, grads, momenta))
    template = self.pg.graph_from_features(edge_raw[..., 0], node_raw[..., 0])
    edge_mask, node_mask = template.edges['mask'], template.nodes['param_mask']
    rms = F.channel_rms(edge_raw, edge_mask, node_raw, node_mask)
    edge_in, node_in = F.graph_channels(edge_raw, edge_mask, node_raw, node_mask, rms)
    graph = template._replace(
        edges={**template.edges, 'weight': edge_in,
               'mask': jnp.tile(edge_mask, (1, F.GRAPH_CHANNELS))},
        nodes={**template.nodes, 'param': node_in,
               'param_mask': jnp.tile(node_mask, (1, F.GRAPH_CHANNELS))})
    return RuleInputs(F.log_sign_features(edge_raw, rms), F.log_sign_features(node_raw, rms),
                      graph)

  def init_meta_params(self, key: jax.Array) -> Any:
    """The rule's initial parameters (host-side driver of one jitted `rule.init` on zero
    parameters)."""

    def init(key):
      params = self.pg.decode(self.pg.graph_from_features(
          jnp.zeros((self.pg.n_edge, self.pg.kernel_size), self.pg.dtype),
          jnp.zeros((self.pg.n_node, self.pg.node_param_size), self.pg.dtype)))
      state = self.init_state(params)
      return self.rule.init(key, self._inputs(params, params, state.momenta), state.carry)

    return jax.jit(init)(key)

  def init_state(self, params: Any) -> LearnedOptimizerState:
    """Zero momenta and recurrent state for `params`. Jittable."""
    return LearnedOptimizerState(F.init_momenta(params),
                                 self.rule.initial_carry(*self._shapes), jnp.zeros((), jnp.int32))

  def step(self, meta_params: Any, params: Any, grads: Any,
           state: LearnedOptimizerState) -> tuple[Any, LearnedOptimizerState]:
    """One step: `(updates, new_state)`, updates shaped like `params`. Jittable and
    differentiable in `meta_params`.

    Raises:
      ValueError: if `params` is not the pytree `pg` was traced with (structure or shapes).
    """
    momenta = F.update_momenta(state.momenta, grads)
    inputs = self._inputs(params, grads, momenta)
    out_edges, out_nodes, carry = self.rule.apply(meta_params, inputs, state.carry)
    delta = lambda out: out[..., 0] * STEP_SCALE * jnp.exp(STEP_SCALE * out[..., 1])
    template = inputs.graph
    edge_mask = template.edges['mask'][:, :self.pg.kernel_size]
    node_mask = template.nodes['param_mask'][:, :self.pg.node_param_size]
    updates = self.pg.decode(self.pg.graph_from_features(
        jnp.where(edge_mask, delta(out_edges), 0).astype(self.pg.dtype),
        jnp.where(node_mask, delta(out_nodes), 0).astype(self.pg.dtype)))
    return updates, LearnedOptimizerState(momenta, carry, state.step + 1, state.meta_params)

  def as_optax(self, meta_params: Any) -> optax.GradientTransformation:
    """An optax transformation with these meta-parameters (held in its state)."""

    def init(params):
      return self.init_state(params)._replace(meta_params=meta_params)

    def update(grads, state, params=None):
      if params is None:
        raise ValueError('the learned optimizer reads the parameters as well as the gradients:'
                         ' call tx.update(grads, opt_state, params).')
      updates, new_state = self.step(state.meta_params, params, grads, state)
      return updates, new_state

    return optax.GradientTransformation(init, update)


def graph_of_update(lopt: LearnedOptimizer, loss_fn: Any, meta_params: Any, steps: int = 2
                    ) -> Any:
  """`graph -> graph` of the learned optimizer's update after `steps` steps from the
  parameters the graph holds, for `gmn_jax.testing.assert_equivariant`. Jittable.

  Args:
    lopt: the learned optimizer.
    loss_fn: `params -> scalar` loss of the optimizee (its gradients drive the steps).
    meta_params: the rule's parameters.
    steps: steps taken before the returned update (so that momenta are non-zero).
  """

  def fn(graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
    params = lopt.pg.decode(graph)
    state = lopt.init_state(params)
    for _ in range(steps):
      updates, state = lopt.step(meta_params, params, jax.grad(loss_fn)(params), state)
      params = optax.apply_updates(params, updates)
    return lopt.pg.encode(updates)

  return fn

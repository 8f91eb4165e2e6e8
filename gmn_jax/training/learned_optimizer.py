"""A learned optimizer for any architecture, as an optax `GradientTransformation`.

`LearnedOptimizer(rule, pg)` binds an update rule (`update_rules`: a graph metanetwork, or
the per-parameter MLP and LSTM baselines) to one optimizee architecture's `ParameterGraph`.
At each step it updates the momenta, reads the 14 features of every parameter
(`optimizer_features`) into the slots of the optimizee's graph (`pg.encode` of each feature,
so every parameter has exactly one slot), runs the rule and decodes its per-slot output
(scale, magnitude) into the update pytree with `pg.decode`:

    delta_theta = scale * 0.01 * exp(0.01 * magnitude),   theta <- theta + delta_theta

(Kofinas et al. 2024, after Metz et al. 2019). `Stabilisers` switches on what Metz et al.
2022's `learned_optimization` does to keep learned steps in check: a smaller fixed step scale
(`step = 1e-3 * direction * exp(1e-3 * magnitude)`, so that the initial update is small),
features normalised per tensor, the step count as features (`optimizer_features`), and a
clip on each parameter's step. `Stabilisers(base='adam')` puts the learned rule on a
hand-designed base, as recent learned optimizers do: the rule modulates Adam's step,

    delta_theta = -r * adam_direction * exp(s * magnitude) + a * scale * exp(b * magnitude),

with Adam's direction also a feature, so that the rule's first steps are Adam's at rate r
(its outputs are O(1) at initialisation: s = 0.1 and a = 1e-3 keep it within a few percent).
`step` is the pure function meta-training differentiates;
`as_optax(meta_params)` wraps it for any optax training loop:

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

import dataclasses
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
FEATURES = ('log_sign', 'tensor')
BASES = ('none', 'adam')


@dataclasses.dataclass(frozen=True)
class Stabilisers:
  """How a learned optimizer reads its inputs and turns its outputs into steps.

  The defaults are the neural-graphs paper's rule; `Stabilisers.lopt()` is
  `learned_optimization`'s (Metz et al. 2022) with a clip.

  Attributes:
    step_scale: the fixed scale a of `delta = a * direction * exp(b * magnitude)`.
    exp_scale: b of the same formula.
    features: `'log_sign'` (14 log-magnitudes and signs, gradients over their network-wide
      root mean square) or `'tensor'` (the 7 raw numbers each over its tensor's root mean
      square; the graph channels too).
    time_features: whether every parameter also reads `optimizer_features.time_features` of
      the step count.
    step_clip: each parameter's step is clipped to `[-step_clip, step_clip]` (None: no clip).
    base: `'none'` (the step is the rule's alone) or `'adam'` (the rule modulates Adam's step
      and adds its own: `-base_rate * adam_direction * exp(base_log_scale * magnitude)` plus
      the step above; Adam's direction is one more feature).
    base_rate: r, the base's fixed learning rate.
    base_log_scale: s, how strongly the rule's magnitude output scales the base's step.
  """

  step_scale: float = STEP_SCALE
  exp_scale: float = STEP_SCALE
  features: str = 'log_sign'
  time_features: bool = False
  step_clip: float | None = None
  base: str = 'none'
  base_rate: float = 1e-2
  base_log_scale: float = 0.1

  def __post_init__(self):
    if self.features not in FEATURES:
      raise ValueError(f'unknown features {self.features!r}; choose from {FEATURES}')
    if self.base not in BASES:
      raise ValueError(f'unknown base {self.base!r}; choose from {BASES}')
    if self.step_scale <= 0 or (self.step_clip is not None and self.step_clip <= 0):
      raise ValueError('step_scale and step_clip must be positive')
    if self.base_rate <= 0:
      raise ValueError('base_rate must be positive')

  @classmethod
  def lopt(cls) -> 'Stabilisers':
    """Every stabiliser: scale 1e-3, per-tensor features, the step count, steps clipped to
    0.1."""
    return cls(step_scale=1e-3, exp_scale=1e-3, features='tensor', time_features=True,
               step_clip=0.1)


class LearnedOptimizerState(NamedTuple):
  """The state of a learned optimizer on one optimizee.

  Attributes:
    momenta: the parameters' pytree with leaves `[*shape, 5]`.
    carry: the rule's recurrent state (the LSTM's; `()` for the others).
    step: int32 scalar, steps taken.
    meta_params: the rule's parameters (held here by `as_optax`; `None` in `step`'s state).
    second_moment: Adam's second moment, shaped like the parameters, with an Adam base
      (`Stabilisers.base`); `()` without.
  """

  momenta: Any
  carry: Any
  step: jax.Array
  meta_params: Any = None
  second_moment: Any = ()


class LearnedOptimizer:
  """An update rule bound to an optimizee architecture (see the module docstring).

  Args:
    rule: a module of `gmn_jax.training.update_rules`.
    pg: the optimizee's `ParameterGraph`.
    stabilisers: input features and step formula (`Stabilisers`).
  """

  def __init__(self, rule: nn.Module, pg: ParameterGraph,
               stabilisers: Stabilisers = Stabilisers()):
    self.rule = rule
    self.pg = pg
    self.stabilisers = stabilisers
    n = F.N_FEATURES if stabilisers.features == 'log_sign' else F.N_RAW
    n += len(F.TIMESCALES) if stabilisers.time_features else 0
    n += 1 if stabilisers.base == 'adam' else 0
    self._shapes = ((pg.n_edge, pg.kernel_size, n), (pg.n_node, pg.node_param_size, n))

  def _slots(self, tree: Any) -> tuple[jax.Array, jax.Array]:
    """A pytree whose leaves have one trailing channel axis `[*shape, C]` -> edge slots
    `[E, K, C]` and node slots `[N, P, C]`."""
    channels = jax.tree.map(lambda x: jnp.moveaxis(x, -1, 0), tree)
    graphs = jax.vmap(self.pg.encode)(channels)
    return (jnp.moveaxis(graphs.edges['weight'], 0, -1),
            jnp.moveaxis(graphs.nodes['param'], 0, -1))

  def _inputs(self, params: Any, grads: Any, momenta: Any, step: jax.Array,
              base: tuple[jax.Array, jax.Array] | None) -> RuleInputs:
    """The rule's inputs; `base`: the base's direction in edge and node slots `[E, K, 1]`,
    `[N, P, 1]`, appended to the features (None: no base)."""
    raw = F.raw_channels(params, grads, momenta)
    tensor = self.stabilisers.features == 'tensor'
    edge_raw, node_raw = self._slots(F.tensor_normalised(raw) if tensor else raw)
    template = self.pg.graph_from_features(edge_raw[..., 0], node_raw[..., 0])
    edge_mask, node_mask = template.edges['mask'], template.nodes['param_mask']
    rms = (jnp.ones((F.N_RAW,), edge_raw.dtype) if tensor
           else F.channel_rms(edge_raw, edge_mask, node_raw, node_mask))
    edge_in, node_in = F.graph_channels(edge_raw, edge_mask, node_raw, node_mask, rms)
    if tensor:
      edge_x, node_x = edge_raw, node_raw
    else:
      edge_x, node_x = F.log_sign_features(edge_raw, rms), F.log_sign_features(node_raw, rms)
    if self.stabilisers.time_features:
      t = F.time_features(step).astype(edge_x.dtype)
      with_t = lambda x: jnp.concatenate([x, jnp.broadcast_to(t, x.shape[:-1] + t.shape)], -1)
      edge_x, node_x = with_t(edge_x), with_t(node_x)
    if base is not None:
      edge_x = jnp.concatenate([edge_x, base[0].astype(edge_x.dtype)], -1)
      node_x = jnp.concatenate([node_x, base[1].astype(node_x.dtype)], -1)
    graph = template._replace(
        edges={**template.edges, 'weight': edge_in,
               'mask': jnp.tile(edge_mask, (1, F.GRAPH_CHANNELS))},
        nodes={**template.nodes, 'param': node_in,
               'param_mask': jnp.tile(node_mask, (1, F.GRAPH_CHANNELS))})
    return RuleInputs(edge_x, node_x, graph)

  def init_meta_params(self, key: jax.Array) -> Any:
    """The rule's initial parameters (host-side driver of one jitted `rule.init` on zero
    parameters)."""

    def init(key):
      params = self.pg.decode(self.pg.graph_from_features(
          jnp.zeros((self.pg.n_edge, self.pg.kernel_size), self.pg.dtype),
          jnp.zeros((self.pg.n_node, self.pg.node_param_size), self.pg.dtype)))
      state = self.init_state(params)
      return self.rule.init(key, self._inputs(params, params, state.momenta, state.step,
                                              self._base(state)),
                            state.carry)

    return jax.jit(init)(key)

  def init_state(self, params: Any) -> LearnedOptimizerState:
    """Zero momenta and recurrent state for `params`. Jittable."""
    second = (jax.tree.map(jnp.zeros_like, params) if self.stabilisers.base == 'adam' else ())
    return LearnedOptimizerState(F.init_momenta(params), self.rule.initial_carry(*self._shapes),
                                 jnp.zeros((), jnp.int32), None, second)

  def _base(self, state: LearnedOptimizerState) -> tuple[jax.Array, jax.Array] | None:
    """Adam's direction in edge and node slots (`[E, K, 1]`, `[N, P, 1]`) from `state`'s
    moments (already updated with this step's gradient); None without a base."""
    if self.stabilisers.base == 'none':
      return None
    direction = F.adam_direction(state.momenta, state.second_moment, state.step)
    return self._slots(jax.tree.map(lambda x: x[..., None], direction))

  def step(self, meta_params: Any, params: Any, grads: Any,
           state: LearnedOptimizerState) -> tuple[Any, LearnedOptimizerState]:
    """One step: `(updates, new_state)`, updates shaped like `params`. Jittable and
    differentiable in `meta_params`.

    Raises:
      ValueError: if `params` is not the pytree `pg` was traced with (structure or shapes).
    """
    momenta = F.update_momenta(state.momenta, grads)
    second = (F.update_second_moment(state.second_moment, grads)
              if self.stabilisers.base == 'adam' else ())
    moved = state._replace(momenta=momenta, second_moment=second)
    base = self._base(moved)
    inputs = self._inputs(params, grads, momenta, state.step, base)
    out_edges, out_nodes, carry = self.rule.apply(meta_params, inputs, state.carry)
    stab = self.stabilisers
    a, b, clip = stab.step_scale, stab.exp_scale, stab.step_clip

    def delta(out, base_dir):
      step = out[..., 0] * a * jnp.exp(b * out[..., 1])
      if base_dir is not None:
        step = step - stab.base_rate * base_dir[..., 0] * jnp.exp(stab.base_log_scale
                                                                  * out[..., 1])
      return step if clip is None else jnp.clip(step, -clip, clip)

    template = inputs.graph
    edge_mask = template.edges['mask'][:, :self.pg.kernel_size]
    node_mask = template.nodes['param_mask'][:, :self.pg.node_param_size]
    edge_base, node_base = base if base is not None else (None, None)
    updates = self.pg.decode(self.pg.graph_from_features(
        jnp.where(edge_mask, delta(out_edges, edge_base), 0).astype(self.pg.dtype),
        jnp.where(node_mask, delta(out_nodes, node_base), 0).astype(self.pg.dtype)))
    return updates, LearnedOptimizerState(momenta, carry, state.step + 1, state.meta_params,
                                          second)

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

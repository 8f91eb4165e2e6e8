"""Per-parameter inputs of a learned optimizer: momenta, and the 14 features read from them.

Follows the neural-graphs paper's learned-optimizer set-up (Kofinas et al. 2024, from its
supplementary code; Metz et al. 2019 for the preprocessing): each parameter contributes its
value, its gradient and 5 momenta of the gradient (decays 0.5, 0.9, 0.99, 0.999, 0.9999);
each of these 7 numbers enters as its log-magnitude and its sign, 14 features (the gradient
and momenta relative to their root mean square over the network, with a soft sign: see
`log_sign_features`). Log-magnitudes make the features independent of the scale of the
gradients, which varies by orders of magnitude between tasks and during training.

The graph metanetwork also reads a few raw channels per parameter on the optimizee's graph
(`graph_channels`): the value, and the gradient and one momentum each divided by their root
mean square over the whole network (an invariant of every neuron permutation).

The stabilised variant (Metz et al. 2022's `learned_optimization` MLP optimizer) reads the 7
raw numbers each divided by their root mean square over their own tensor at this step
(`tensor_normalised`: `x / sqrt(1e-5 + mean_tensor x^2)`, invariant under the neuron
permutations, which move entries within a tensor), and the step count as `time_features`,
`tanh(t / s - 1)` for timescales s = 1 ... 3000, the same for every parameter.

A rule on a hand-designed base (`adam_direction`) also keeps Adam's second moment of the
gradient per parameter (`update_second_moment`) and reads Adam's bias-corrected direction
m / (sqrt(v) + eps) as one more feature; its first moment is the 0.9-momentum above.

Everything here is jittable and works leaf by leaf on parameter pytrees, or on slot arrays.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

MOMENTUM_DECAYS = (0.5, 0.9, 0.99, 0.999, 0.9999)
N_RAW = 2 + len(MOMENTUM_DECAYS)  # value, gradient, momenta
N_FEATURES = 2 * N_RAW  # log-magnitude and sign of each
GRAPH_CHANNELS = 3  # value, normalised gradient, normalised 0.9-momentum
_EPS = 1e-8
_LOG_SCALE = 0.1  # log|x| spans about [-18, 3]: keep the inputs near unit scale
_FLOOR = 1e-3  # gradients and momenta below 1e-3 of their network-wide RMS count as zero
_TENSOR_EPS = 1e-5  # tensor_normalised: x / sqrt(1e-5 + mean x^2), as learned_optimization
TIMESCALES = (1, 3, 10, 30, 100, 300, 1000, 3000)
_ADAM_MOMENTUM = 1  # Adam's first moment is the momentum of decay MOMENTUM_DECAYS[1] (0.9)
ADAM_B1, ADAM_B2, ADAM_EPS = MOMENTUM_DECAYS[_ADAM_MOMENTUM], 0.999, 1e-8
ADAM_FLOOR = 1e-3  # adam_direction's eps grows to 1e-3 of the network-wide gradient RMS


def init_momenta(params: Any) -> Any:
  """Zero momenta: each leaf `[*shape, 5]` (one slot per decay in `MOMENTUM_DECAYS`)."""
  return jax.tree.map(lambda p: jnp.zeros(jnp.shape(p) + (len(MOMENTUM_DECAYS),),
                                          jnp.result_type(p)), params)


def update_momenta(momenta: Any, grads: Any) -> Any:
  """`m_b <- b m_b + (1 - b) g` for every decay b; leaves `[*shape, 5]`."""
  decays = jnp.asarray(MOMENTUM_DECAYS)
  return jax.tree.map(lambda m, g: decays * m + (1 - decays) * g[..., None], momenta, grads)


def raw_channels(params: Any, grads: Any, momenta: Any) -> Any:
  """The 7 raw numbers per parameter, leaves `[*shape, 7]`: value, gradient, 5 momenta."""
  return jax.tree.map(lambda p, g, m: jnp.concatenate([p[..., None], g[..., None], m], -1),
                      params, grads, momenta)


def tensor_normalised(raw: Any) -> Any:
  """Leaves `[*shape, C]` with each channel divided by `sqrt(1e-5 + mean x^2)` over the leaf's
  entries (one tensor of the optimizee): the per-tensor second-moment normalisation of
  `learned_optimization`'s MLP optimizer. The 1e-5 keeps a tensor of float noise (a gradient
  that is zero in exact arithmetic) near zero rather than blowing it up to unit scale."""

  def normalise(x):
    axes = tuple(range(x.ndim - 1))
    return x * jax.lax.rsqrt(_TENSOR_EPS + jnp.mean(jnp.square(x), axis=axes, keepdims=True))

  return jax.tree.map(normalise, raw)


def time_features(step: jax.Array) -> jax.Array:
  """`[len(TIMESCALES)]`: `tanh(step / s - 1)` per timescale s, so that a rule can change its
  steps with the step count (e.g. decay them past its meta-training truncation)."""
  scales = jnp.asarray(TIMESCALES, jnp.float32)
  return jnp.tanh(jnp.asarray(step, jnp.float32) / scales - 1.0)


def channel_rms(edge_raw: jax.Array, edge_mask: jax.Array, node_raw: jax.Array,
                node_mask: jax.Array) -> jax.Array:
  """`[7]`: the root mean square of each raw channel over every parameter of the network
  (edge slots `[E, K, 7]` and node slots `[N, P, 7]`, masked): invariant under every
  permutation of neurons."""
  em = jnp.asarray(edge_mask, edge_raw.dtype)[..., None]
  nm = jnp.asarray(node_mask, node_raw.dtype)[..., None]
  count = jnp.maximum(em.sum() + nm.sum(), 1.0)
  square = (jnp.sum((edge_raw * em) ** 2, axis=(0, 1))
            + jnp.sum((node_raw * nm) ** 2, axis=(0, 1))) / count
  return jnp.sqrt(square)


def log_sign_features(raw: jax.Array, rms: jax.Array) -> jax.Array:
  """`[..., 7]` raw numbers to `[..., 14]` features: log-magnitude and sign of each.

  The value enters as `0.1 log(|x| + 1e-8)` and `sign(x)`. The gradient and momenta are first
  divided by their root mean square over the network (`rms`), then enter as
  `0.1 log(|x| + 1e-3)` and the soft sign `x / (|x| + 1e-3)`: a gradient that is zero in exact
  arithmetic (a bias followed by a normalisation) is float noise whose sign flips under a
  permutation of the computation, and a hard sign would turn that noise into a different
  update. Values are moved exactly by a permutation, so their sign is safe.
  """
  value, rest = raw[..., :1], raw[..., 1:] / (rms[1:] + 1e-30)
  return jnp.concatenate([_LOG_SCALE * jnp.log(jnp.abs(value) + _EPS),
                          _LOG_SCALE * jnp.log(jnp.abs(rest) + _FLOOR), jnp.sign(value),
                          rest / (jnp.abs(rest) + _FLOOR)], -1)


def graph_channels(edge_raw: jax.Array, edge_mask: jax.Array, node_raw: jax.Array,
                   node_mask: jax.Array, rms: jax.Array) -> tuple[jax.Array, jax.Array]:
  """What the graph metanetwork reads in each slot of the optimizee's graph.

  Three channels per parameter: its value, its gradient and its 0.9-momentum, the last two
  divided by their root mean square over the network (`channel_rms`). Channel c of slot s
  goes to column `c * S + s`, so that the metanetworks' slot encoders read a graph whose K
  (and P) are three times the template's.

  Args:
    edge_raw: `[E, K, 7]` raw numbers (`raw_channels`) in the edge slots.
    edge_mask: `[E, K]` which edge slots hold a parameter.
    node_raw: `[N, P, 7]` raw numbers in the node slots.
    node_mask: `[N, P]`.
    rms: `[7]` from `channel_rms`.

  Returns:
    `([E, 3K], [N, 3P])`, zero in slots that hold no parameter.
  """
  scale = jnp.stack([jnp.ones((), rms.dtype), 1 / (rms[1] + 1e-30), 1 / (rms[3] + 1e-30)])

  def columns(raw, mask):
    x = jnp.stack([raw[..., 0], raw[..., 1], raw[..., 3]], -1) * scale
    x = x * jnp.asarray(mask, raw.dtype)[..., None]
    return jnp.moveaxis(x, -1, 1).reshape(x.shape[0], -1)

  return columns(edge_raw, edge_mask), columns(node_raw, node_mask)


def update_second_moment(second: Any, grads: Any) -> Any:
  """Adam's second moment, `v <- 0.999 v + 0.001 g^2`, leaves shaped like the parameters."""
  return jax.tree.map(lambda v, g: ADAM_B2 * v + (1 - ADAM_B2) * jnp.square(g), second, grads)


def adam_direction(momenta: Any, second: Any, step: jax.Array) -> Any:
  """Adam's direction `m_hat / (sqrt(v_hat) + eps)` per parameter, leaves shaped like the
  parameters (descend along minus it).

  `momenta` and `second` are the moments after this step's gradient (`update_momenta`,
  `update_second_moment`) and `step` the steps taken before it, so the bias corrections are
  `1 - b^(step + 1)`. The first moment is the 0.9-momentum (`MOMENTUM_DECAYS[1]`). The eps is
  Adam's 1e-8 plus 1e-3 of the root mean square of sqrt(v_hat) over the whole network
  (`ADAM_FLOOR`, a permutation invariant): a gradient that is zero in exact arithmetic (a
  bias followed by a normalisation) is float noise that plain Adam would blow up to a unit
  step whose sign flips under a permutation of the computation; here it stays near zero, as
  in `log_sign_features`. Parameters whose gradients are within 1e3 of the network's take
  Adam's step.
  """
  t = jnp.asarray(step, jnp.float32) + 1
  m_hat = jax.tree.map(lambda m: m[..., _ADAM_MOMENTUM] / (1 - ADAM_B1 ** t), momenta)
  v_hat = jax.tree.map(lambda v: v / (1 - ADAM_B2 ** t), second)
  leaves = jax.tree.leaves(v_hat)
  mean_v = sum(jnp.sum(v) for v in leaves) / max(sum(v.size for v in leaves), 1)
  eps = ADAM_EPS + ADAM_FLOOR * jnp.sqrt(mean_v)
  return jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), m_hat, v_hat)

"""Per-parameter inputs of a learned optimizer: momenta, and the 14 features read from them.

Follows the neural-graphs paper's learned-optimizer set-up (Kofinas et al. 2024, from its
supplementary code; Metz et al. 2019 for the preprocessing): each parameter contributes its
value, its gradient and 5 momenta of the gradient (decays 0.5, 0.9, 0.99, 0.999, 0.9999);
each of these 7 numbers enters as its log-magnitude and its sign, 14 features. Log-magnitudes
make the features independent of the scale of the gradients, which varies by orders of
magnitude between tasks and during training.

The graph metanetwork also reads a few raw channels per parameter on the optimizee's graph
(`graph_channels`): the value, and the gradient and one momentum each divided by their root
mean square over the whole network (an invariant of every neuron permutation).

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


def log_sign_features(raw: jax.Array) -> jax.Array:
  """`[..., 7]` raw numbers to `[..., 14]` features: `0.1 log(|x| + 1e-8)` and `sign(x)`."""
  return jnp.concatenate([_LOG_SCALE * jnp.log(jnp.abs(raw) + _EPS), jnp.sign(raw)], -1)


def graph_channels(edge_raw: jax.Array, edge_mask: jax.Array, node_raw: jax.Array,
                   node_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """What the graph metanetwork reads in each slot of the optimizee's graph.

  Three channels per parameter: its value, its gradient and its 0.9-momentum, the last two
  divided by their root mean square over all parameters of the network (invariant under
  every permutation of neurons). Channel c of slot s goes to column `c * S + s`, so that the
  metanetworks' slot encoders read a graph whose K (and P) are three times the template's.

  Args:
    edge_raw: `[E, K, 7]` raw numbers (`raw_channels`) in the edge slots.
    edge_mask: `[E, K]` which edge slots hold a parameter.
    node_raw: `[N, P, 7]` raw numbers in the node slots.
    node_mask: `[N, P]`.

  Returns:
    `([E, 3K], [N, 3P])`, zero in slots that hold no parameter.
  """
  em = jnp.asarray(edge_mask, edge_raw.dtype)[..., None]
  nm = jnp.asarray(node_mask, node_raw.dtype)[..., None]
  pick = lambda raw, m: jnp.stack([raw[..., 0], raw[..., 1], raw[..., 3]], -1) * m
  edges, nodes = pick(edge_raw, em), pick(node_raw, nm)
  count = jnp.maximum(em.sum() + nm.sum(), 1.0)
  square = (jnp.sum(edges ** 2, axis=(0, 1)) + jnp.sum(nodes ** 2, axis=(0, 1))) / count
  scale = jnp.concatenate([jnp.ones((1,), edges.dtype), jax.lax.rsqrt(square[1:] + _EPS ** 2)])
  to_columns = lambda x: jnp.moveaxis(x * scale, -1, 1).reshape(x.shape[0], -1)
  return to_columns(edges), to_columns(nodes)

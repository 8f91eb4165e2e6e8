"""Scale- and sign-equivariant building blocks (Kalogeropoulos et al., NeurIPS 2024, ScaleGMN).

A vector `x` of a neuron's hidden state moves as `x -> q x` when its neuron is rescaled:
`q > 0` for a ReLU neuron (`SCALE`), `q = ±1` for a tanh or sine neuron (`SIGN`), `q = 1` for
a neuron that admits no factor (`NONE`, see `gmn_jax.graphs.scaling`). An edge state moves with
`q_receiver / q_sender`. The blocks here keep these laws:

- `ScaleInvariant`: `g(q x) = g(x)`. Scale: canonicalisation `x / ‖x‖`; sign: symmetrisation
  of the first layer, `ρ(A x + b) + ρ(-A x + b)`; both when the factor can be either.
- `ScaleEquivariant`: `f(x) = Γ x ⊙ g(x)` with Γ linear without bias and g invariant, so
  `f(q x) = q f(x)` (the paper's invariant-times-equivariant product).
- `reciprocal`: `x / ‖x‖²`, which moves with `1 / q` (a bidirectional network's backward
  messages need edge states that move with `q_sender / q_receiver`).

Numerical stability: norms are clipped below (`‖x‖ -> max(‖x‖, ε)`, computed as
`sqrt(max(‖x‖², ε²))` so that gradients stay finite at 0; a zero vector is canonicalised and
inverted to zero). Canonicalisation clips at `CANONICAL_EPSILON` = 1e-12 (its output has norm
at most 1 whatever ε is, so ε can be tiny and the invariance is exact for any state a float32
network produces). The reciprocal clips at a caller's `epsilon` (`DEFAULT_EPSILON` = 1e-4):
it is exact for vectors of norm above ε before and after the factor, and bounded by `1 / ε`
below, where an exact reciprocal would blow up. Everything here is jittable.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

DEFAULT_EPSILON = 1e-4
CANONICAL_EPSILON = 1e-12


def clipped_norm(x: jax.Array, epsilon: float) -> jax.Array:
  """`[..., 1]`: `max(‖x‖, epsilon)` over the last axis, with finite gradients at 0."""
  return jnp.sqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), epsilon ** 2))


def canonicalize(x: jax.Array, has_scale: jax.Array) -> jax.Array:
  """`x / max(‖x‖, 1e-12)` on rows where `has_scale` `[...]` is true, `x` elsewhere: invariant
  to positive factors (and sign-equivariant, so a sign symmetrisation may follow)."""
  return jnp.where(has_scale[..., None], x / clipped_norm(x, CANONICAL_EPSILON), x)


def reciprocal(x: jax.Array, epsilon: float) -> jax.Array:
  """`x / max(‖x‖, ε)²`: moves with `1 / q` when `x` moves with `q` (scale or sign)."""
  return x / jnp.square(clipped_norm(x, epsilon))


class ScaleInvariant(nn.Module):
  """`g(x)` `[X, features]`, invariant to the factor each row of `x` `[X, D]` admits.

  `ρ(A c + b) + ρ(s A c + b)` then a Dense, where `c` is `canonicalize(x)` on rows with a
  scale and `s` is -1 on rows with a sign and +1 elsewhere (so rows without a factor get a
  plain two-layer MLP of `x`).

  Attributes:
    features: output width.
    hidden: hidden width.
    activation: ρ.
  """

  features: int
  hidden: int
  activation: Callable = nn.silu

  @nn.compact
  def __call__(self, x: jax.Array, has_scale: jax.Array, has_sign: jax.Array) -> jax.Array:
    z = nn.Dense(self.hidden, use_bias=False, name='first')(
        canonicalize(x, has_scale))
    b = self.param('first_bias', nn.initializers.zeros, (self.hidden,))
    mirrored = jnp.where(has_sign[..., None], -z, z)
    h = self.activation(z + b) + self.activation(mirrored + b)
    return nn.Dense(self.features, name='second')(h)


class ScaleEquivariant(nn.Module):
  """`Γ x ⊙ g(x)` `[X, features]`: moves with the factor of each row of `x` `[X, D]`.

  Attributes:
    features: output width.
    hidden: hidden width of g (`ScaleInvariant`).
    activation: of g.
    kernel_init: of Γ.
  """

  features: int
  hidden: int
  activation: Callable = nn.silu
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array, has_scale: jax.Array, has_sign: jax.Array) -> jax.Array:
    linear = nn.Dense(self.features, use_bias=False, kernel_init=self.kernel_init,
                      name='linear')(x)
    gate = ScaleInvariant(self.features, self.hidden, self.activation, name='gate')(
        x, has_scale, has_sign)
    return linear * gate

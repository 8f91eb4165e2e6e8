"""Scale- and sign-equivariant building blocks (Kalogeropoulos et al., NeurIPS 2024, ScaleGMN).

A vector `x` of a neuron's hidden state moves as `x -> q x` when its neuron is rescaled:
`q > 0` for a ReLU neuron (`SCALE`), `q = ±1` for a tanh or sine neuron (`SIGN`), `q = 1` for
a neuron that admits no factor (`NONE`, see `gmn_jax.graphs.scaling`). An edge state moves with
`q_receiver / q_sender`. The blocks here keep these laws:

- `ScaleInvariant`: `g(q x) = g(x)`, bounded. Every row is canonicalised to `x / ‖x‖`; rows
  without a positive scale also see `log(1 + ‖x‖)`; rows with a sign are symmetrised,
  `ρ(A c + b) + ρ(-A c + b)`.
- `ScaleEquivariant`: `f(x) = Γ x ⊙ g(x)` with Γ linear without bias and g invariant, so
  `f(q x) = q f(x)` (the paper's invariant-times-equivariant product).
- `reciprocal`: `x / ‖x‖²`, which moves with `1 / q` (a bidirectional network's backward
  messages need edge states that move with `q_sender / q_receiver`).

Numerical stability: norms are clipped below (`‖x‖ -> max(‖x‖, ε)`, with gradients finite
at 0 and no overflow for huge states, see `clipped_norm`; a zero vector is canonicalised and
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
  """`[..., 1]`: `max(‖x‖, epsilon)` over the last axis, with finite gradients at 0. The sum
  of squares is taken of `x / max(max|x|, ε)`, so it neither overflows (‖x‖ up to float32's
  largest value) nor underflows."""
  scale = jnp.maximum(jnp.max(jnp.abs(x), axis=-1, keepdims=True), epsilon)
  unit = jnp.sum(jnp.square(x / scale), axis=-1, keepdims=True)
  return scale * jnp.sqrt(jnp.maximum(unit, jnp.square(epsilon / scale)))


def reciprocal(x: jax.Array, epsilon: float) -> jax.Array:
  """`x / max(‖x‖, ε)²`: moves with `1 / q` when `x` moves with `q` (scale or sign)."""
  return x / jnp.square(clipped_norm(x, epsilon))


class ScaleInvariant(nn.Module):
  """`g(x)` `[X, features]`, invariant to the factor each row of `x` `[X, D]` admits, and
  bounded (its inputs are a unit direction and a log-magnitude).

  `ρ(A c + a m + b) + ρ(s A c + a m + b)` then a Dense, where `c = x / ‖x‖` on every row,
  `m = log(1 + ‖x‖)` on rows without a scale (a positive factor changes the norm; a sign
  flip does not) and 0 on rows with one, and `s` is -1 on rows with a sign and +1 elsewhere.
  Rows without a factor thus get an MLP of their direction and log-norm: no information is
  lost, and `Γ x ⊙ g(x)` (`ScaleEquivariant`) grows linearly in `x` whatever the row's kind.
  (An MLP of the raw `x` grows linearly, so the product grew quadratically per block: on the
  default CNN zoo three blocks overflowed float32 at initialisation.)

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
    norm = clipped_norm(x, CANONICAL_EPSILON)
    z = nn.Dense(self.hidden, use_bias=False, name='first')(x / norm)
    magnitude = jnp.where(has_scale[..., None], 0.0, jnp.log1p(norm))
    b = nn.Dense(self.hidden, name='first_magnitude')(magnitude)
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

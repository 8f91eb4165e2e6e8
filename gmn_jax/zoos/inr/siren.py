"""SIRENs: implicit neural representations of images (Sitzmann et al. 2020), and fitting many
of them at once.

A SIREN maps a pixel coordinate in [-1, 1]^2 to the pixel's value: hidden layers compute
`sin(omega0 * (W x + b))`, the last layer is linear. The metanetwork papers use 2 -> 32 -> 32
-> C with omega0 = 30 on a 28x28 grid (1,185 parameters for grey images), in one of two value
conventions that are not interchangeable (see `CONVENTIONS`).

`fit_sirens` fits one SIREN per image, thousands at once in one jitted program: it loops over
chunks of INRs and vmaps the initialisation and every Adam step within a chunk (full batch:
every pixel each step). Neither
DWSNets nor NFN published its fitting recipe (steps, learning rate); ours is `InrZooConfig`'s.
Its steps compute the sine with a vectorised polynomial (`_sincos`: the sine and, for the
backward pass, the cosine from one range reduction, within 2e-7 of `jnp.sin`): XLA:CPU calls
the C library's scalar `sinf` per element, which costs several times the SIREN's matmuls.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax


@dataclasses.dataclass(frozen=True)
class Convention:
  """How pixel values and coordinates map to a SIREN's output and input.

  Attributes:
    low, high: the pixel range the SIREN represents (an MSE is on this range).
    output_offset: added to the last layer's output (part of the model).
    indexing: `'xy'` (coordinate 0 is the column) or `'ij'` (coordinate 0 is the row).
    zero_bias: biases start at zero (else PyTorch's `nn.Linear` default, U(±1/sqrt(fan_in))).
  """

  low: float
  high: float
  output_offset: float
  indexing: str
  zero_bias: bool

  @property
  def peak(self) -> float:
    """The range's width, the peak signal of PSNR."""
    return self.high - self.low


CONVENTIONS = {
    # DWSNets' INR data sets (used by neural graphs and ScaleGMN).
    'dwsnets': Convention(0.0, 1.0, 0.5, 'xy', True),
    # NFN's (used by NFN, NFT and GMN): the standard SIREN initialisation.
    'nfn': Convention(-1.0, 1.0, 0.0, 'ij', False),
}


def _uniform(bound: float):
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound,
                                                                  bound)


class Siren(nn.Module):
  """A SIREN: `[..., 2]` coordinates -> `[..., out_features]` values. Jittable.

  Initialisation as Sitzmann et al. (2020): the first layer's kernel U(±1/fan_in), later
  ones U(±sqrt(6/fan_in)/omega0); biases per `zero_bias`.

  Attributes:
    hidden: widths of the sine layers.
    out_features: channels (1 grey, 3 colour).
    omega0: the sine's frequency factor (30 for 28x28 images).
    output_offset: added to the output (0.5 in the DWSNets convention).
    zero_bias: initialise biases at zero.
  """

  hidden: Sequence[int] = (32, 32)
  out_features: int = 1
  omega0: float = 30.0
  output_offset: float = 0.0
  zero_bias: bool = True

  @nn.compact
  def __call__(self, coords: jax.Array) -> jax.Array:
    x = coords
    for i, width in enumerate(tuple(self.hidden) + (self.out_features,)):
      fan_in = x.shape[-1]
      bound = 1.0 / fan_in if i == 0 else np.sqrt(6.0 / fan_in) / self.omega0
      bias_init = (nn.initializers.zeros if self.zero_bias
                   else _uniform(1.0 / np.sqrt(fan_in)))
      x = nn.Dense(width, kernel_init=_uniform(bound), bias_init=bias_init)(x)
      if i < len(self.hidden):
        x = jnp.sin(self.omega0 * x)
    return x + self.output_offset


def coordinates(height: int, width: int, indexing: str = 'xy') -> np.ndarray:
  """`[height * width, 2]` pixel coordinates in [-1, 1], rows of the image in order.

  `'xy'`: (column, row) coordinates; `'ij'`: (row, column). Host-side.
  """
  rows, cols = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width),
                           indexing='ij')
  first, second = (cols, rows) if indexing == 'xy' else (rows, cols)
  return np.stack([first.ravel(), second.ravel()], -1).astype(np.float32)


def render(model: Siren, params: Any, height: int, width: int,
           indexing: str = 'xy') -> jax.Array:
  """The image `[height, width, C]` that one SIREN's `params` represent. Jittable (vmap it
  over a stack of INRs)."""
  coords = jnp.asarray(coordinates(height, width, indexing))
  return model.apply(params, coords).reshape(height, width, -1)


def psnr(mse: np.ndarray | jax.Array, peak: float) -> np.ndarray | jax.Array:
  """Peak signal-to-noise ratio in dB, `10 log10(peak^2 / mse)`."""
  return 10.0 * np.log10(peak ** 2) - 10.0 * jnp.log10(mse)


# Cody-Waite split of pi/2 into three float32 parts (the first two exact in few bits), and
# Cephes' float32 minimax polynomials of sin and cos on [-pi/4, pi/4].
_PIO2 = (1.5703125, 4.837512969970703125e-4, 7.54978995489188216e-8)
_SIN = (-1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4)
_COS = (4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5)


def _sincos(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`(sin x, cos x)` from one range reduction, elementwise in vectorisable ops. Jittable.
  Absolute error below 1e-7 for |x| < 4e3 (tested; a SIREN's pre-activations stay far below)."""
  k = jnp.round(x * (2 / np.pi))
  r = ((x - k * _PIO2[0]) - k * _PIO2[1]) - k * _PIO2[2]
  z = r * r
  sin = r + r * z * (_SIN[0] + z * (_SIN[1] + z * _SIN[2]))
  cos = 1.0 - 0.5 * z + z * z * (_COS[0] + z * (_COS[1] + z * _COS[2]))
  quadrant = k.astype(jnp.int32) & 3  # x = k pi/2 + r
  swap = (quadrant & 1) == 1
  sin, cos = jnp.where(swap, cos, sin), jnp.where(swap, -sin, cos)
  flip = quadrant >= 2
  return jnp.where(flip, -sin, sin), jnp.where(flip, -cos, cos)


@jax.custom_jvp
def _sine(x: jax.Array) -> jax.Array:
  return _sincos(x)[0]


@_sine.defjvp
def _sine_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  sin, cos = _sincos(x)
  return sin, cos * t


def _apply(model: Siren, params: Any, coords: jax.Array) -> jax.Array:
  """`model.apply(params, coords)` with `_sine` for the sine. Jittable."""
  x = coords
  layers = params['params']
  for i in range(len(model.hidden) + 1):
    dense = layers[f'Dense_{i}']
    x = x @ dense['kernel'] + dense['bias']
    if i < len(model.hidden):
      x = _sine(model.omega0 * x)
  return x + model.output_offset


# INRs fitted together (vmapped) in each pass of the loop over the zoo: a chunk's activations
# (8 x 784 pixels x 32 for a 28x28 image) stay in cache through all its steps, where the whole
# zoo's would stream from memory every step (benchmarks/inr.py: 2x the INRs/s of vmapping all).
_CHUNK = 8


@functools.partial(jax.jit, static_argnames=('model', 'steps', 'learning_rate', 'apply'))
def fit_sirens(model: Siren, coords: jax.Array, targets: jax.Array, keys: jax.Array,
               steps: int, learning_rate: float, apply=_apply) -> tuple[Any, jax.Array]:
  """Fits one SIREN per target image with Adam, full batch, all INRs in one program. Jittable.

  Each INR's fit depends only on its image and key: the program loops over chunks of
  `_CHUNK` INRs and vmaps within a chunk (the same INRs as vmapping all of them, up to float
  rounding).

  Args:
    model: the SIREN (static).
    coords: `[P, 2]` pixel coordinates.
    targets: `[n, P, C]` pixel values in the convention's range.
    keys: `[n]` one initialisation key per INR (different seeds give different INRs of one
      image, the "augmented" sets).
    steps: Adam steps.
    learning_rate: Adam's step size.
    apply: `(model, params, coords) -> values` the steps differentiate (static; the default
      is `model.apply` with the polynomial sine; `lambda m, p, x: m.apply(p, x)` is the
      reference the tests compare it with).

  Returns:
    (params with a leading axis `[n]`, final MSE `[n]` on the convention's range).
  """
  tx = optax.adam(learning_rate)

  def loss(p, target, apply=apply):
    return jnp.mean((apply(model, p, coords) - target) ** 2)

  def fit_one(target_and_key):
    target, key = target_and_key
    params = model.init(key, coords[:1])

    def step(carry, _):
      p, state = carry
      g = jax.grad(loss)(p, target)
      updates, state = tx.update(g, state, p)
      return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    exact = lambda m, p, x: m.apply(p, x)  # the final MSE of the model itself (jnp.sin)
    return params, loss(params, target, exact)

  return jax.lax.map(fit_one, (targets, keys), batch_size=_CHUNK)

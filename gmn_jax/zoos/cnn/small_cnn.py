"""The Small CNN Zoo's network (Unterthiner et al. 2020) as a Flax module.

`SmallCNN` is what zoo members are and what `gmn_jax.trace` reads. While a zoo trains, its
convolutions run through `_conv_as_matmul` (the same maths as a patch matmul, much faster
under vmap on a CPU) and its activation may be a per-member choice; traced models keep `lax`'s
convolution and a named activation.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _conv_as_matmul(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                    dimension_numbers=None, feature_group_count=1, precision=None, **unused):
  """`lax.conv_general_dilated` for NHWC x HWIO as a matmul over patches. Jittable.

  Numerically the same convolution; used while training a zoo because XLA:CPU runs a vmapped
  convolution (members folded into feature groups) 1.5-4x slower than the batched matmul this
  becomes under vmap (benchmarks/zoo_generation.py; the ratio moves with the machine's load).
  Models being traced use `lax`'s.
  """
  del dimension_numbers, precision, unused  # Flax's defaults: NHWC inputs, HWIO kernels
  if feature_group_count != 1 or any(d != 1 for d in (lhs_dilation or ()) + (rhs_dilation or ())):
    raise NotImplementedError('_conv_as_matmul: no groups or dilation')
  kh, kw, c_in, c_out = rhs.shape
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
  x = jnp.pad(lhs, [(0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)])
  sh, sw = window_strides
  ho, wo = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
  patches = jnp.concatenate(
      [x[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :]
       for i in range(kh) for j in range(kw)], axis=-1)  # (i, j, c) order, as in HWIO
  return jnp.einsum('nhwk,ko->nhwo', patches, rhs.reshape(kh * kw * c_in, c_out))


_ACTIVATION_FNS = {'relu': nn.relu, 'tanh': jnp.tanh}


class SmallCNN(nn.Module):
  """The Small CNN Zoo's network: convolutions, global average pooling, Dense.

  Unterthiner et al. (2020): 3 convolutions of 16 channels, 3x3, stride 2, 'VALID' (Keras'
  default), each followed by the activation and dropout; mean over space; Dense to the classes.
  Parameter names are Flax's: `Conv_0`, ..., `Dense_0`.

  Attributes:
    width: channels of every convolution.
    num_classes: outputs of the Dense layer.
    num_layers: number of convolutions.
    kernel_size: square kernel side.
    strides: stride of every convolution.
    padding: 'SAME' or 'VALID'.
    activation: 'relu', 'tanh' or a callable (the zoo trainer passes a per-member choice).
    conv_general_dilated: the convolution routine; None for `lax.conv_general_dilated` (what
      models that will be traced should use).
  """

  width: int = 16
  num_classes: int = 10
  num_layers: int = 3
  kernel_size: int = 3
  strides: int = 2
  padding: str = 'VALID'
  activation: str | Callable[[jax.Array], jax.Array] = 'relu'
  conv_general_dilated: Callable[..., jax.Array] | None = None

  @nn.compact
  def __call__(self, x, *, dropout_rate=0.0, dropout_rng=None):
    """Logits [batch, num_classes] of images x [batch, H, W, C]; dropout only with a key."""
    act = (_ACTIVATION_FNS[self.activation] if isinstance(self.activation, str)
           else self.activation)
    if dropout_rng is not None:
      # One draw of 8-bit uniforms for every layer's mask (the rate rounds to a multiple of
      # 1/256): threefry dominates a small CNN's step on a CPU, and each random call is one
      # more kernel for XLA to compile.
      sizes = [int(np.prod(s)) * self.width for s in self.feature_map_shapes(x.shape[1:-1])]
      words = jax.random.bits(dropout_rng, (x.shape[0], -(-sum(sizes) // 4)), jnp.uint32)
      noise = jax.lax.bitcast_convert_type(words, jnp.uint8).reshape(x.shape[0], -1)
      offsets = np.cumsum([0] + sizes)
      dropped = jnp.clip(jnp.round(dropout_rate * 256), 0, 255)  # values below this are dropped
      scale = 256.0 / (256.0 - dropped)
    for i in range(self.num_layers):
      x = nn.Conv(self.width, (self.kernel_size, self.kernel_size), self.strides, self.padding,
                  conv_general_dilated=self.conv_general_dilated)(x)
      x = act(x)
      if dropout_rng is not None:
        keep = noise[:, offsets[i]:offsets[i + 1]].reshape(x.shape) >= dropped
        x = jnp.where(keep, x * scale, 0.0)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)

  def feature_map_shapes(self, spatial: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Spatial shape after each convolution, for an input of spatial shape `spatial`."""
    shapes = []
    for _ in range(self.num_layers):
      window = (self.kernel_size,) * len(spatial)
      strides = (self.strides,) * len(spatial)
      pads = jax.lax.padtype_to_pads(spatial, window, strides, self.padding)
      spatial = tuple((n + lo + hi - k) // s + 1
                      for n, (lo, hi), k, s in zip(spatial, pads, window, strides))
      shapes.append(spatial)
    return shapes

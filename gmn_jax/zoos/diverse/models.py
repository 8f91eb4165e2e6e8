"""The networks of the diverse-architecture zoo (Lim et al. 2024, Table 1) as Flax modules.

Six families, every one an image classifier on `[batch, H, W, C]` images:

- `mlp`: flatten, `depth` Dense layers of `hidden` units, Dense to the classes.
- `cnn`: `depth` 3x3 convolutions of `hidden` channels (the first two with stride 2), each
  followed by a norm (`none`, `batch` for BatchNorm, `group` for GroupNorm of 4 groups) and the
  activation; global average pooling; Dense.
- `cnn1d`: a 1D CNN over the flattened pixels (the sequence of H*W pixels, channels as
  features), `depth` convolutions of kernel `kernel` and stride 2, mean over the sequence, Dense.
  The convolution runs as a 2D one with a `(kernel, 1)` window on `[batch, H*W, 1, C]`: the same
  maths, and the zoo trainer's fast convolution applies.
- `deepsets`: DeepSets (Zaheer et al. 2017) over the set of pixels: each pixel's value through a
  Dense layer plus an encoding of its position, `depth` Dense layers per pixel in all, mean over
  pixels, Dense, Dense to the classes. The position encoding starts as the sinusoidal one and is
  a learned parameter (`pos_embedding`, as ViT's): the tracer refuses a constant concatenated
  to the input (no neurons carry it), and a parameter is also what the metanetwork can read.
- `resnet`: a stride-2 3x3 stem convolution with BatchNorm, `depth` basic blocks (He et al.
  2016: conv-BN-act-conv-BN plus the identity, then the activation), pooling, Dense.
- `vit`: a ViT (Dosovitskiy et al. 2021): `patch` x `patch` patch convolution, a learned
  position embedding, `depth` pre-LayerNorm blocks (multi-head attention with `heads` heads,
  an MLP of 2 * hidden), LayerNorm, mean over tokens, Dense.

Every family ends with dropout on the pooled features (rate per call) and a Dense classifier.
Modules take `train` (BatchNorm uses batch statistics and updates its running ones) and
`dropout_rate`/`dropout_rng`; traced models use the defaults (inference). Activations are
`'relu'`, `'tanh'` or, while a zoo trains, a callable that picks one per member.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

FAMILIES = ('mlp', 'cnn', 'cnn1d', 'deepsets', 'resnet', 'vit')
NORMS = ('none', 'batch', 'group')
_ACTIVATIONS = {'relu': nn.relu, 'tanh': jnp.tanh}


@dataclasses.dataclass(frozen=True)
class NetSpec:
  """One architecture of the zoo (frozen, hashable: members with equal specs train together).

  Attributes:
    family: one of FAMILIES.
    hidden: width (units, channels or embedding size).
    depth: layers, blocks or transformer blocks.
    norm: `cnn` only: 'none', 'batch' or 'group' (4 groups).
    kernel: `cnn1d` only: kernel length.
    patch: `vit` only: patch side.
    heads: `vit` only: attention heads (must divide `hidden`).
  """

  family: str
  hidden: int
  depth: int = 1
  norm: str = 'none'
  kernel: int = 3
  patch: int = 2
  heads: int = 1

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f'unknown family {self.family!r}; choose from {FAMILIES}')
    if self.norm not in NORMS:
      raise ValueError(f'unknown norm {self.norm!r}; choose from {NORMS}')
    if self.hidden < 1 or self.depth < 1:
      raise ValueError(f'hidden and depth must be positive: {self}')
    if self.family == 'vit' and self.hidden % self.heads:
      raise ValueError(f'heads ({self.heads}) must divide hidden ({self.hidden})')
    if self.norm == 'group' and self.hidden % 4:
      raise ValueError(f'GroupNorm of 4 groups needs hidden divisible by 4: {self.hidden}')

  @property
  def name(self) -> str:
    """A short label, e.g. 'cnn h16 d2 batch'."""
    extra = {'cnn': self.norm, 'cnn1d': f'k{self.kernel}',
             'vit': f'p{self.patch} heads{self.heads}'}.get(self.family, '')
    return f'{self.family} h{self.hidden} d{self.depth}' + (f' {extra}' if extra else '')

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


def _act(activation) -> Callable[[jax.Array], jax.Array]:
  return _ACTIVATIONS[activation] if isinstance(activation, str) else activation


def _sinusoidal_init(key, shape, dtype=jnp.float32) -> jax.Array:
  """`[1, n, features]` sinusoidal encodings of positions 0..n-1 (Vaswani et al. 2017)."""
  del key
  _, n, features = shape
  freq = 1.0 / (100.0 ** (np.arange(-(-features // 2)) / max(features // 2, 1)))
  angle = np.arange(n)[:, None] * freq[None]
  table = np.concatenate([np.sin(angle), np.cos(angle)], axis=-1)[:, :features]
  return jnp.asarray(table[None], dtype)


class DiverseNet(nn.Module):
  """An image classifier of any family of `NetSpec` (see the module docstring).

  Attributes:
    spec: the architecture.
    num_classes: outputs.
    activation: 'relu', 'tanh' or a callable (the zoo trainer's per-member choice).
    conv_general_dilated: the convolution routine; None for `lax`'s (what traced models use).
  """

  spec: NetSpec
  num_classes: int = 10
  activation: str | Callable[[jax.Array], jax.Array] = 'relu'
  conv_general_dilated: Callable[..., jax.Array] | None = None

  def _conv(self, features, window, strides=1, use_bias=True, name=None):
    return nn.Conv(features, window, strides, 'SAME' if name != 'patch_embed' else 'VALID',
                   use_bias=use_bias, conv_general_dilated=self.conv_general_dilated, name=name)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False, dropout_rate: Any = 0.0,
               dropout_rng: jax.Array | None = None) -> jax.Array:
    """Logits `[batch, num_classes]` of images `x` `[batch, H, W, C]`."""
    s, act = self.spec, _act(self.activation)
    batch_norm = lambda name=None: nn.BatchNorm(use_running_average=not train, name=name)
    if s.family == 'mlp':
      x = x.reshape(x.shape[0], -1)
      for _ in range(s.depth):
        x = act(nn.Dense(s.hidden)(x))
    elif s.family == 'cnn':
      for i in range(s.depth):
        x = self._conv(s.hidden, (3, 3), 2 if i < 2 else 1)(x)
        if s.norm == 'batch':
          x = batch_norm()(x)
        elif s.norm == 'group':
          x = nn.GroupNorm(num_groups=4)(x)
        x = act(x)
      x = jnp.mean(x, axis=(1, 2))
    elif s.family == 'cnn1d':
      x = x.reshape(x.shape[0], -1, 1, x.shape[-1])  # pixels as a sequence
      for _ in range(s.depth):
        x = act(self._conv(s.hidden, (s.kernel, 1), (2, 1))(x))
      x = jnp.mean(x, axis=(1, 2))
    elif s.family == 'deepsets':
      x = nn.Dense(s.hidden)(x.reshape(x.shape[0], -1, x.shape[-1]))  # each pixel alone
      x = act(x + self.param('pos_embedding', _sinusoidal_init, (1, x.shape[1], s.hidden)))
      for _ in range(s.depth - 1):
        x = act(nn.Dense(s.hidden)(x))
      x = act(nn.Dense(s.hidden)(jnp.mean(x, axis=1)))
    elif s.family == 'resnet':
      x = act(batch_norm()(self._conv(s.hidden, (3, 3), 2, use_bias=False)(x)))
      for _ in range(s.depth):
        y = act(batch_norm()(self._conv(s.hidden, (3, 3), use_bias=False)(x)))
        y = batch_norm()(self._conv(s.hidden, (3, 3), use_bias=False)(y))
        x = act(x + y)
      x = jnp.mean(x, axis=(1, 2))
    else:  # vit
      x = self._conv(s.hidden, (s.patch, s.patch), s.patch, name='patch_embed')(x)
      x = x.reshape(x.shape[0], -1, s.hidden)
      x = x + self.param('pos_embedding', nn.initializers.normal(0.02),
                         (1, x.shape[1], s.hidden))
      for _ in range(s.depth):
        y = nn.MultiHeadDotProductAttention(num_heads=s.heads, qkv_features=s.hidden)(
            nn.LayerNorm()(x))
        x = x + y
        y = nn.Dense(s.hidden)(act(nn.Dense(2 * s.hidden)(nn.LayerNorm()(x))))
        x = x + y
      x = jnp.mean(nn.LayerNorm()(x), axis=1)
    if dropout_rng is not None:
      keep = jax.random.uniform(dropout_rng, x.shape) >= dropout_rate
      x = jnp.where(keep, x / jnp.maximum(1.0 - dropout_rate, 1e-3), 0.0)
    return nn.Dense(self.num_classes)(x)

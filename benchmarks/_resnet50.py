"""A ResNet-50 in Flax linen (bottleneck blocks, BatchNorm), for the tracing benchmark."""

import flax.linen as nn
import jax.numpy as jnp


class Bottleneck(nn.Module):
  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x):
    norm = lambda: nn.BatchNorm(use_running_average=True)
    y = nn.relu(norm()(nn.Conv(self.features, (1, 1), use_bias=False)(x)))
    y = nn.relu(norm()(nn.Conv(self.features, (3, 3), self.strides, use_bias=False)(y)))
    y = norm()(nn.Conv(self.features * 4, (1, 1), use_bias=False)(y))
    if x.shape[-1] != self.features * 4 or self.strides != 1:
      x = norm()(nn.Conv(self.features * 4, (1, 1), self.strides, use_bias=False)(x))
    return nn.relu(x + y)


class ResNet50(nn.Module):
  num_classes: int = 1000

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(64, (7, 7), 2, padding=[(3, 3), (3, 3)], use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
    x = nn.max_pool(x, (3, 3), (2, 2), padding='SAME')
    for stage, blocks in enumerate((3, 4, 6, 3)):
      for b in range(blocks):
        x = Bottleneck(64 * 2 ** stage, 2 if (b == 0 and stage > 0) else 1)(x)
    return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))

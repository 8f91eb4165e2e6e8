"""Attention variants whose symmetries depend on positions or head structure: rotary position
embeddings (half-split and interleaved `stack` forms), ALiBi per-head slopes, T5's learned
relative position bias, and grouped-query attention. Each is written the way the Flax/transformers code writes it, in plain linen.

`build(name)` gives `(model, variables, (x,), {})` with random weights (seed fixed).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_SEQ, _WIDTH = 5, 8


def _rotate_half(x: jax.Array) -> jax.Array:
  half = x.shape[-1] // 2
  return jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def _rotary_half(x: jax.Array) -> jax.Array:
  """GPT-NeoX / LLaMA form: x·cos + rotate_half(x)·sin. x: [B, T, H, D]."""
  d = x.shape[-1]
  inv = 1.0 / (10000 ** (np.arange(0, d, 2) / d))
  angles = np.arange(x.shape[1])[:, None] * inv[None, :]  # [T, D/2]
  angles = np.concatenate([angles, angles], -1)[None, :, None, :]
  return x * jnp.cos(angles) + _rotate_half(x) * jnp.sin(angles)


def _rotary_interleaved(x: jax.Array) -> jax.Array:
  """GPT-J form: pairs (2i, 2i+1) rotated, rebuilt with `stack` + reshape. x: [B, T, H, D]."""
  d = x.shape[-1]
  inv = 1.0 / (10000 ** (np.arange(0, d, 2) / d))
  angles = (np.arange(x.shape[1])[:, None] * inv[None, :])[None, :, None, :]  # [1, T, 1, D/2]
  x1, x2 = x[..., ::2], x[..., 1::2]
  c, s = jnp.cos(angles), jnp.sin(angles)
  return jnp.stack([x1 * c - x2 * s, x1 * s + x2 * c], axis=-1).reshape(x.shape)


def _alibi(heads: int, seq: int) -> np.ndarray:
  """[H, T, T] ALiBi biases: slope_h · (j - i), slopes 2^(-8h/H) (Press et al., 2022)."""
  slopes = 2.0 ** (-8.0 * np.arange(1, heads + 1) / heads)
  distance = np.arange(seq)[None, :] - np.arange(seq)[:, None]
  return (slopes[:, None, None] * distance[None]).astype(np.float32)


class Attention(nn.Module):
  """Self-attention with `kv_heads` key/value heads shared by groups of query heads (GQA when
  `kv_heads < heads`), optional rotary embeddings of Q and K, optional ALiBi biases."""

  heads: int = 4
  kv_heads: int = 4
  head_dim: int = 4
  rotary: str = ''  # '', 'half' or 'interleaved'
  alibi: bool = False
  relative_bias: bool = False  # T5: a learned [buckets, heads] table looked up by distance

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, t, _ = x.shape
    q = nn.DenseGeneral((self.heads, self.head_dim), name='query')(x)
    k = nn.DenseGeneral((self.kv_heads, self.head_dim), name='key')(x)
    v = nn.DenseGeneral((self.kv_heads, self.head_dim), name='value')(x)
    if self.rotary:
      rope = _rotary_half if self.rotary == 'half' else _rotary_interleaved
      q, k = rope(q), rope(k)
    repeat = self.heads // self.kv_heads
    k, v = jnp.repeat(k, repeat, axis=2), jnp.repeat(v, repeat, axis=2)
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k) / np.sqrt(self.head_dim)
    if self.alibi:
      logits = logits + _alibi(self.heads, t)
    if self.relative_bias:
      distance = jnp.arange(t)[None, :] - jnp.arange(t)[:, None]
      bucket = jnp.clip(distance + 3, 0, 5)  # 6 buckets
      table = nn.Embed(6, self.heads, name='relative_bias')
      logits = logits + jnp.transpose(table(bucket), (2, 0, 1))[None]
    weights = jax.nn.softmax(logits, axis=-1)
    y = jnp.einsum('bhqk,bkhd->bqhd', weights, v)
    return nn.DenseGeneral(x.shape[-1], axis=(-2, -1), name='out')(y)


class Block(nn.Module):
  """x + Attention(LN(x)), mean over tokens, Dense(3)."""

  attention: dict

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Dense(_WIDTH)(x)
    x = x + Attention(**self.attention)(nn.LayerNorm()(x))
    return nn.Dense(3)(jnp.mean(x, axis=1))


CONFIGS = {
    'rotary': dict(rotary='half'),
    'rotary_interleaved': dict(rotary='interleaved'),
    'alibi': dict(alibi=True),
    'gqa': dict(kv_heads=2),
    'gqa_rotary_alibi': dict(kv_heads=2, rotary='half', alibi=True),
    'relative_bias': dict(relative_bias=True),
}


def build(name: str):
  """`(model, variables, (x,), {})` for one of `CONFIGS`."""
  model = Block(CONFIGS[name])
  x = jax.random.normal(jax.random.key(1), (2, _SEQ, 3))
  variables = model.init(jax.random.key(0), x)
  return model, variables, (x,), {}


class TextEncoder(nn.Module):
  """Called the way transformers' Flax wrappers call their modules: token ids, an integer
  attention mask and position ids; returns a dict of two outputs; computes a sort (no graph
  rule) whose result it drops (dead code)."""

  vocab: int = 11
  heads: int = 2

  @nn.compact
  def __call__(self, input_ids, attention_mask, position_ids):
    x = nn.Embed(self.vocab, _WIDTH, name='word')(input_ids)
    x = x + nn.Embed(16, _WIDTH, name='position')(position_ids)
    _ = jnp.sort(x, axis=-1)  # never used
    y = nn.LayerNorm()(x)
    q = nn.DenseGeneral((self.heads, _WIDTH // self.heads), name='query')(y)
    k = nn.DenseGeneral((self.heads, _WIDTH // self.heads), name='key')(y)
    v = nn.DenseGeneral((self.heads, _WIDTH // self.heads), name='value')(y)
    bias = (1.0 - attention_mask[:, None, None, :].astype(jnp.float32)) * -1e9
    weights = jax.nn.softmax(jnp.einsum('bqhd,bkhd->bhqk', q, k) + bias, axis=-1)
    y = jnp.einsum('bhqk,bkhd->bqhd', weights, v)
    x = x + nn.DenseGeneral(_WIDTH, axis=(-2, -1), name='out')(y)
    pooled = jnp.tanh(nn.Dense(_WIDTH, name='pooler')(x[:, 0]))
    return {'last_hidden_state': x, 'pooled': pooled}


def build_text_encoder():
  """`(model, variables, (input_ids, attention_mask, position_ids), {})`."""
  ids = jnp.array([[3, 1, 4, 1, 5], [9, 2, 6, 0, 0]])
  mask = (ids > 0).astype(jnp.int32)
  positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
  model = TextEncoder()
  variables = model.init(jax.random.key(0), ids, mask, positions)
  return model, variables, (ids, mask, positions), {}

"""Property tests: random architectures and random symmetries (hypothesis)."""

import flax.linen as nn
from tests.support import graph_iso
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gmn_jax

ACTIVATIONS = {'relu': nn.relu, 'tanh': jnp.tanh, 'sin': jnp.sin, 'gelu': nn.gelu}


class _MLP(nn.Module):
  widths: tuple[int, ...]
  act: str

  @nn.compact
  def __call__(self, x):
    for w in self.widths[:-1]:
      x = ACTIVATIONS[self.act](nn.Dense(w)(x))
    return nn.Dense(self.widths[-1])(x)


class _CNN(nn.Module):
  channels: tuple[int, ...]
  kernel: int
  groups: int
  strides: int
  residual: bool

  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(self.channels[0], (self.kernel, self.kernel))(x))
    for c in self.channels[1:]:
      y = nn.Conv(c, (self.kernel, self.kernel), feature_group_count=self.groups)(x)
      x = nn.relu(x + y if self.residual and c == x.shape[-1] else y)
    x = nn.Conv(self.channels[-1], (1, 1), strides=self.strides)(x)
    return nn.Dense(3)(x.mean(axis=(1, 2)))


def _check(model, x, seed):
  v = model.init(jax.random.key(seed), x)
  v = jax.tree.map(lambda l: l + 0.1 * jax.random.normal(jax.random.key(seed + 1), l.shape), v)
  pg = gmn_jax.trace(model, v, x)
  graph = pg.encode(v)
  decoded = pg.decode(graph)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(decoded)))
  sym = pg.random_symmetry(seed)
  permuted = sym.apply(v)
  y, y_sym = model.apply(v, x), model.apply(permuted, x)
  np.testing.assert_allclose(y_sym, y, atol=1e-5 * float(jnp.abs(y).max()) + 1e-6)
  assert graph_iso.isomorphic(graph, pg.encode(permuted))


@pytest.mark.slow  # 12 random traced-and-compiled MLPs (~110 s loaded)
@settings(max_examples=12, deadline=None)
@given(widths=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       act=st.sampled_from(sorted(ACTIVATIONS)), n_in=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_random_mlps(widths, act, n_in, seed):
  _check(_MLP(tuple(widths), act), jnp.linspace(-1, 1, 2 * n_in).reshape(2, n_in), seed)


@pytest.mark.slow  # 8 random traced-and-compiled CNNs (~60 s loaded)
@settings(max_examples=8, deadline=None)
@given(channels=st.lists(st.sampled_from([2, 4]), min_size=1, max_size=3),
       kernel=st.sampled_from([1, 3]), groups=st.sampled_from([1, 2]),
       strides=st.sampled_from([1, 2]), residual=st.booleans(), seed=st.integers(0, 2**16))
def test_random_cnns(channels, kernel, groups, strides, residual, seed):
  x = jnp.linspace(-1, 1, 2 * 5 * 5 * 2).reshape(2, 5, 5, 2)
  _check(_CNN(tuple(channels), kernel, groups, strides, residual), x, seed)

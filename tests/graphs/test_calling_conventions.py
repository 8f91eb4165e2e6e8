"""Models called the way transformers' Flax wrappers call them: integer attention masks and
position ids beside the token ids, a dict of outputs, dead code."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax.graphs import NodeType
from tests.support import attention_models


def test_masks_position_ids_dict_outputs_and_dead_code_trace_as_given():
  model, v, args, _ = attention_models.build_text_encoder()
  pg = gmn_jax.trace(model, v, *args)  # the symmetry safety net runs here
  assert int((pg.node_type == NodeType.OUTPUT).sum()) == 16  # 8 hidden-state + 8 pooled
  graph = pg.encode(v)
  for a, b in zip(jax.tree.leaves(pg.decode(graph)), jax.tree.leaves(v)):
    np.testing.assert_array_equal(a, b)
  fn = jax.jit(lambda w: model.apply(w, *args))
  ref = fn(v)
  moved = 0
  for seed in range(2):
    sym = pg.random_symmetry(seed)
    out = fn(sym.apply(v))
    for key in ref:  # both outputs are preserved, not only the first
      np.testing.assert_allclose(out[key], ref[key], rtol=1e-4, atol=1e-5)
    moved += int((sym.node_perm != np.arange(pg.n_node)).sum())
  assert moved > 0


def test_a_model_with_no_activation_output_is_refused():
  _, v, args, _ = attention_models.build_text_encoder()
  with pytest.raises(gmn_jax.UnsupportedModelError, match='none of the'):
    gmn_jax.trace_function(lambda w, ids, mask, positions: ids * mask, v, *args)


class _ChannelsFirst(nn.Module):
  """transformers' vision convention: NCHW pixels in, NCHW features out."""

  @nn.compact
  def __call__(self, pixels):
    x = jnp.transpose(pixels, (0, 2, 3, 1))
    x = nn.Conv(4, (3, 3))(nn.relu(nn.Conv(6, (3, 3))(x)))
    return jnp.transpose(x, (0, 3, 1, 2))


def test_channels_first_pixels_and_outputs_trace_as_given():
  model = _ChannelsFirst()
  pixels = jnp.ones((1, 3, 5, 5))
  v = model.init(jax.random.key(0), pixels)
  pg = gmn_jax.trace(model, v, pixels)  # the symmetry safety net runs here
  assert int((pg.node_type == NodeType.INPUT).sum()) == 3
  assert int((pg.node_type == NodeType.OUTPUT).sum()) == 4
  for a, b in zip(jax.tree.leaves(pg.decode(pg.encode(v))), jax.tree.leaves(v)):
    np.testing.assert_array_equal(a, b)

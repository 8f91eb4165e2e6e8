"""init_params: a model's Flax `init` as one compiled program gives eager `init`'s bits.

Corner cases: initializers whose scale is not a power of two (an `Embed` of width 12, a
`Dense` of fan-in 7: a compiler that folds `normal * sqrt 2 * scale` into one multiply rounds
them differently), truncated normals, biases, LayerNorm scales; in the slow tier, every graph
metanetwork at the widths the tiny configs and the tests use.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax.training.fit import init_params
from tests.training.test_fit import MODEL, TRAIN, _data


class _Mixed(nn.Module):
  @nn.compact
  def __call__(self, ids, x):
    h = nn.Embed(50, 12)(ids) + nn.Dense(12)(x)
    h = nn.LayerNorm()(nn.relu(h))
    h = nn.Conv(5, (3,), kernel_init=nn.initializers.variance_scaling(
        0.7, 'fan_avg', 'uniform'))(h)
    return nn.Dense(3, kernel_init=nn.initializers.he_normal())(h)


def _assert_same_bits(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for (path, x), y in zip(jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b)):
    assert np.asarray(x).dtype == np.asarray(y).dtype, jax.tree_util.keystr(path)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


def test_the_compiled_init_gives_eager_init_s_bits():
  model, ids, x = _Mixed(), jnp.arange(6).reshape(1, 6), jnp.ones((1, 6, 7))
  for seed in (0, 3):
    _assert_same_bits(init_params(model, jax.random.key(seed), ids, x),
                      model.init(jax.random.key(seed), ids, x))
  # A different key draws different parameters (the comparison is not of constants).
  assert not np.array_equal(init_params(model, jax.random.key(1), ids, x)['params']['Embed_0'][
      'embedding'], init_params(model, jax.random.key(0), ids, x)['params']['Embed_0'][
      'embedding'])


def _metanetworks(sizes):
  return {
      'gmn_8': MODEL,
      'gmn_16': gmn_jax.GMN(node_dim=16, edge_dim=16, num_layers=2, readout_hidden=16),
      'nggnn': gmn_jax.NGGNN(hidden_dim=12, num_layers=2, readout_hidden=12, **sizes),
      'ngt': gmn_jax.NGT(node_dim=12, edge_dim=12, num_layers=1, num_heads=4, readout_hidden=12,
                         **sizes),
      'scalegmn': gmn_jax.ScaleGMN(hidden_dim=12, num_layers=1, readout_hidden=12, **sizes),
  }


@pytest.mark.slow  # eager init compiles hundreds of programs: ~15 s a metanetwork
@pytest.mark.parametrize('name', ['gmn_8', 'gmn_16', 'nggnn', 'ngt', 'scalegmn'])
def test_metanetworks_start_from_eager_init_s_bits(name):
  data = _data()
  budget = data.budget(8)
  graphs, _, _ = next(data.batches(TRAIN[:8], 8, budget))
  model = _metanetworks(dict(max_kernel_size=budget.kernel_size,
                             max_param_size=budget.param_size))[name]
  if name == 'scalegmn':  # it reads each neuron's scaling kind; which kind does not matter here
    graphs = graphs._replace(nodes={**graphs.nodes, 'scaling': np.zeros(
        np.shape(graphs.nodes['type'])[:1], np.int8)})
  _assert_same_bits(init_params(model, jax.random.key(0), graphs),
                    model.init(jax.random.key(0), graphs))

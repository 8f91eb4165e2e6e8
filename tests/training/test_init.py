"""init_params: a model's Flax `init` as one compiled program, its random draws batched, gives
the plain jitted `init`'s and eager `init`'s bits.

Corner cases: initializers whose scale is not a power of two (an `Embed` of width 12, a
`Dense` of fan-in 7: a compiler that folds `normal * sqrt 2 * scale` into one multiply rounds
them differently), truncated normals, biases, LayerNorm scales, an orthogonal initializer (a
QR after the draw), a scalar parameter, bfloat16 parameters, raw `random.bits`, a key from
`random.split`, a scale that depends on another parameter's draw, draws inside `nn.scan`;
every metanetwork and baseline at the widths the tiny configs and the tests use (against
eager `init` in the slow tier).
"""

import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmn_jax
from gmn_jax.metanets.sequence_baselines import DMC, ParameterDeepSets
from gmn_jax.training import init_program
from gmn_jax.training.init_program import init_params
from tests.training.test_fit import MODEL, TRAIN, _data

# Before jax 0.10 `init_params` is the plain jitted init (its compile rounds the batched
# transform 1 ulp apart); the version floor's CI run reaches these tests' subjects through fit.
batching = pytest.mark.skipif(jax.__version_info__[:2] < init_program._BATCHES_FROM,
                              reason='init_params batches draws from jax 0.10')


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


class _Step(nn.Module):
  @nn.compact
  def __call__(self, h, _):
    return nn.tanh(nn.Dense(6)(h)), None


class _Corner(nn.Module):
  @nn.compact
  def __call__(self, x):
    a = self.param('a', nn.initializers.normal(0.3), (5, 4))
    # a scale read off another draw: that draw's value cannot feed the batched draws
    b = self.param('b', lambda k, s: jax.random.normal(k, s) * jnp.abs(a).max(), (4,))
    c = self.param('c', lambda k, s: jax.random.uniform(k, s, minval=-3.0, maxval=0.5), ())
    bits = self.param('bits', lambda k, s: jax.random.bits(k, s), (3, 2))
    d = self.param('d', lambda k, s: jax.random.normal(jax.random.split(k)[1], s), (2, 3))
    h = nn.Dense(4, param_dtype=jnp.bfloat16)(x)
    return h.sum() + a.sum() + b.sum() + c + bits.sum() + d.sum()


class _Loop(nn.Module):
  @nn.compact
  def __call__(self, x):
    h = nn.Dense(6, kernel_init=nn.initializers.orthogonal())(nn.Dense(6)(x))
    scan = nn.scan(_Step, variable_axes={'params': 0}, split_rngs={'params': True}, length=2)
    return scan()(h, None)[0]  # draws inside a loop stay as they are


def _plain(model, *args):
  return init_params(model, *args, batch_draws=False)


def _plan(model, *args):
  return init_program._Plan(init_program._Program(jax.make_jaxpr(model.init)(*args)))


@batching
@pytest.mark.parametrize('model, args', [
    (_Mixed(), (jnp.arange(6).reshape(1, 6), jnp.ones((1, 6, 7)))),
    (_Corner(), (jnp.ones((2, 3)),)),
    pytest.param(_Loop(), (jnp.ones((2, 3)),), marks=pytest.mark.slow)],  # ~4 s: scan, QR
                         ids=['mixed', 'corners', 'loop'])
def test_batched_draws_give_the_plain_jitted_init_s_bits(model, args):
  _assert_same_bits(init_params(model, jax.random.key(5), *args),
                    _plain(model, jax.random.key(5), *args))
  groups = _plan(model, jax.random.key(0), *args).groups
  assert len(groups) >= 2  # draws were batched, in chains of different primitives


@batching
def test_a_batched_transform_that_ignored_each_draw_s_scale_would_be_caught(monkeypatch):
  """Negative control: the check sees a transform that gives every draw of a chain the first
  draw's side inputs (here the Embed's and Dense kernels' truncated-normal scales, which
  differ)."""
  model, args = _Mixed(), (jnp.arange(6).reshape(1, 6), jnp.ones((1, 6, 7)))
  plain = _plain(model, jax.random.key(0), *args)
  monkeypatch.setattr(init_program._Plan, '_side',
                      lambda self, refs, seg, env: jnp.reshape(env[refs[0]], ()))
  wrong = init_params(model, jax.random.key(0), *args)
  with pytest.raises(AssertionError):
    _assert_same_bits(wrong, plain)


@batching
def test_without_batchable_draws_it_is_the_plain_init_and_says_why(caplog):
  model, args = _Mixed(), (jnp.arange(6).reshape(1, 6), jnp.ones((1, 6, 7)))
  with caplog.at_level(logging.INFO, logger=init_program.__name__):
    with jax.threefry_partitionable(False):
      _assert_same_bits(init_params(model, jax.random.key(0), *args),
                        _plain(model, jax.random.key(0), *args))
    _assert_same_bits(init_params(nn.LayerNorm(), jax.random.key(0), jnp.ones((2, 3))),
                      nn.LayerNorm().init(jax.random.key(0), jnp.ones((2, 3))))
  assert 'jax_threefry_partitionable is off' in caplog.text
  assert 'no 32-bit threefry draws' in caplog.text


def _metanetworks(sizes, length=None, template=None):
  return {
      'gmn_8': MODEL,
      'gmn_16': gmn_jax.GMN(node_dim=16, edge_dim=16, num_layers=2, readout_hidden=16),
      'nggnn': gmn_jax.NGGNN(hidden_dim=12, num_layers=2, readout_hidden=12, **sizes),
      'ngt': gmn_jax.NGT(node_dim=12, edge_dim=12, num_layers=1, num_heads=4, readout_hidden=12,
                         **sizes),
      'scalegmn': gmn_jax.ScaleGMN(hidden_dim=12, num_layers=1, readout_hidden=12, **sizes),
      'edge_deepsets': gmn_jax.EdgeDeepSets(hidden_dim=8, readout_hidden=8),
      'statnn': gmn_jax.StatNN(hidden=(8,)),
      'weight_mlp': template and gmn_jax.WeightMLP.for_architecture(template, hidden=(8,)),
      'dmc': DMC(max_length=length, channels=(4, 8)),
      'parameter_deepsets': ParameterDeepSets(max_length=length, hidden=8),
  }


def _graphs_and_model(name):
  data = _data()
  budget = data.budget(8)
  graphs, _, _ = next(data.batches(TRAIN[:8], 8, budget))
  model = _metanetworks(dict(max_kernel_size=budget.kernel_size,
                             max_param_size=budget.param_size), budget.n_edge,
                        data.templates[0])[name]
  if name == 'scalegmn':  # it reads each neuron's scaling kind; which kind does not matter here
    graphs = graphs._replace(nodes={**graphs.nodes, 'scaling': np.zeros(
        np.shape(graphs.nodes['type'])[:1], np.int8)})
  return model, graphs


@batching
@pytest.mark.parametrize('name', [
    'statnn', 'weight_mlp', 'parameter_deepsets',
    # each compiles its init twice: ~3-11 s a metanetwork on 2 busy cores
    *(pytest.param(name, marks=pytest.mark.slow)
      for name in ('gmn_8', 'nggnn', 'ngt', 'scalegmn', 'edge_deepsets', 'dmc'))])
def test_metanetworks_batched_draws_give_the_plain_jitted_init_s_bits(name):
  model, graphs = _graphs_and_model(name)
  _assert_same_bits(init_params(model, jax.random.key(2), graphs),
                    _plain(model, jax.random.key(2), graphs))


@pytest.mark.slow  # eager init compiles hundreds of programs: ~15 s a metanetwork
@pytest.mark.parametrize('name', ['gmn_8', 'gmn_16', 'nggnn', 'ngt', 'scalegmn'])
def test_metanetworks_start_from_eager_init_s_bits(name):
  model, graphs = _graphs_and_model(name)
  _assert_same_bits(init_params(model, jax.random.key(0), graphs),
                    model.init(jax.random.key(0), graphs))

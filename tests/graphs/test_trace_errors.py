"""Bad input gets a clear error naming what is wrong: primitive, module path, parameter path."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from tests.support import models
import pytest

import gmn_jax
from gmn_jax.graphs.architecture import NodeType

X = jnp.ones((1, 4))


class _Sorts(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(2)(jnp.sort(nn.Dense(3)(x), axis=-1))


class _Unused(nn.Module):
  @nn.compact
  def __call__(self, x):
    self.param('spare', nn.initializers.ones, (3,))
    return nn.Dense(2)(x)


def _variables(model):
  return model.init(jax.random.key(0), X)


def test_unknown_primitive_names_primitive_and_module():
  model = _Sorts()
  with pytest.raises(gmn_jax.UnsupportedModelError, match=r'`sort`.*_Sorts'):
    gmn_jax.trace(model, _variables(model), X)


def test_unused_parameter_converts_on_fixed_parameter_nodes():
  """A parameter the call never uses (DINOv2's mask token) is held by PARAMETER nodes: exact
  round trip, one slot per scalar, and no symmetry moves it."""
  model = _Unused()
  v = _variables(model)
  v['params']['spare'] = jnp.array([1.0, 2.0, 3.0])
  pg = gmn_jax.trace(model, v, X)
  kind = np.asarray(pg.node_type)
  held = np.flatnonzero(kind == NodeType.PARAMETER)
  assert len(held) == 3 and np.array_equal(np.asarray(pg.encode(v).nodes['param'])[held, 0],
                                           [1.0, 2.0, 3.0])
  assert np.array_equal(np.sort(pg.slot_of), np.unique(pg.slot_of))
  back = pg.decode(pg.encode(v))
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(v)))
  for seed in range(3):
    assert (pg.random_symmetry(seed).node_perm[held] == held).all()


def test_non_finite_parameters_are_refused_at_trace_and_encode(traced):
  pg, v, _ = traced('mlp')
  bad = jax.tree.map(lambda l: l, v)
  bad['params'] = dict(bad['params'])
  bad['params']['Dense_1'] = {'kernel': v['params']['Dense_1']['kernel'].at[0, 0].set(jnp.nan),
                              'bias': v['params']['Dense_1']['bias']}
  with pytest.raises(ValueError, match=r"\['Dense_1'\]\['kernel'\].*NaN"):
    pg.encode(bad)
  case = models.get('mlp')
  with pytest.raises(ValueError, match=r"\['Dense_1'\]\['kernel'\].*NaN"):
    gmn_jax.trace(case.model, bad, *case.example_args)


def test_wrong_shape_or_structure_is_named(traced):
  pg, v, _ = traced('mlp')
  wrong = {'params': dict(v['params'])}
  wrong['params']['Dense_0'] = {'kernel': jnp.ones((4, 5)), 'bias': v['params']['Dense_0']['bias']}
  with pytest.raises(ValueError, match=r"\['Dense_0'\]\['kernel'\] has shape \(4, 5\)"):
    pg.encode(wrong)
  with pytest.raises(ValueError, match='structure'):
    pg.encode(v['params'])


def test_decode_refuses_a_graph_of_another_template(traced):
  pg, _, _ = traced('mlp')
  other, w, _ = traced('cnn_gap')
  with pytest.raises(ValueError, match='this template needs'):
    pg.decode(other.encode(w))


def test_argmax_over_neurons_is_refused():
  class ArgMax(nn.Module):
    @nn.compact
    def __call__(self, x):
      h = nn.Dense(3)(x)
      return nn.Dense(2)(h * jnp.argmax(h, axis=-1, keepdims=True))

  model = ArgMax()
  with pytest.raises(gmn_jax.UnsupportedModelError, match='argmax'):
    gmn_jax.trace(model, _variables(model), X)



class _Step(nn.Module):
  @nn.compact
  def __call__(self, c, _):
    return nn.relu(nn.Dense(4)(c)), None


class _Scans(nn.Module):
  """Layers stacked with `nn.scan` (parameters with a leading layer axis)."""

  @nn.compact
  def __call__(self, x):
    layers = nn.scan(_Step, variable_axes={'params': 0}, split_rngs={'params': True}, length=2)
    return nn.Dense(2)(layers()(x, None)[0])


def test_scan_over_layers_is_refused_naming_the_loop():
  model = _Scans()
  with pytest.raises(gmn_jax.UnsupportedModelError, match=r'unroll.*primitive `scan`'):
    gmn_jax.trace(model, _variables(model), X)


# ---- the other call form: each mistake named with the right call ---------------------------


def test_linen_model_without_its_variables():
  case = models.get('mlp')
  with pytest.raises(TypeError, match=r'MLP is a linen model: call trace\(model, variables, '
                     r'\*example_args\) with variables = model.init.*got an array of shape '
                     r'\(2, 3\).*an input where the variables go'):
    gmn_jax.trace(case.model, *case.example_args)
  with pytest.raises(TypeError, match='got no variables'):
    gmn_jax.trace(case.model)


def test_linen_params_without_their_collection():
  case = models.get('mlp')
  with pytest.raises(ValueError, match=r'have no "params" collection \(their keys: '
                     r"\['Dense_0', 'Dense_1', 'Dense_2'\]\).*\{\"params\": params\}"):
    gmn_jax.trace(case.model, case.variables['params'], *case.example_args)
  gmn_jax.trace(case.model, {'params': case.variables['params']}, *case.example_args)  # control


def test_nnx_module_called_in_the_linen_form():
  from flax import nnx  # pylint: disable=g-import-not-at-top
  case = models.get('mlp_nnx')
  pure = nnx.to_pure_dict(nnx.state(case.model))
  for variables in (nnx.state(case.model), pure, {'params': pure}):
    with pytest.raises(TypeError, match=r'MLPNNX is an nnx module: it holds its own variables, '
                       r'so call trace\(module, \*example_args\) without them'):
      gmn_jax.trace(case.model, variables, *case.example_args)
  assert gmn_jax.trace(case.model, *case.example_args).n_params == 62  # the right form


# ---- messages ---------------------------------------------------------------------------------


def test_each_readings_error_appears_once():
  """Readings of the input that fail the same way are not repeated behind the first error."""
  model, x = _Sorts(), jnp.ones((1, 4, 4, 3))  # rank 4: last, channels-first, one channel
  with pytest.raises(gmn_jax.UnsupportedModelError) as info:
    gmn_jax.trace(model, model.init(jax.random.key(0), x), x)
  text = str(info.value)
  assert text.count('primitive `sort`') == 1, text
  assert 'channels-first' in text and 'one channel' not in text, text  # the different one stays


def test_summary_names_the_output_group():
  case = models.get('mlp')
  lines = gmn_jax.trace(case.model, case.variables, *case.example_args).summary().splitlines()
  kinds = [line.split()[2] for line in lines if 'MLP/Dense' in line or 'input0' in line]
  assert kinds == ['input', 'hidden', 'hidden', 'output'], lines

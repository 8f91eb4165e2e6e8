"""The user's model for `gmn-convert --model module:Class`: imported, built (linen or nnx, from
JSON constructor arguments), its example inputs, and the variables it expects. Host-side."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gmn_jax.io.checkpoints import NOT_IMPORTABLE, UNSUPPORTED, ConversionError, is_float

# Collections that linen models may create but that are not parameters of the function.
_NOT_VARIABLES = frozenset({'intermediates', 'cache', 'losses', 'perturbations'})


def import_model(spec: str) -> Any:
  """The object named by `package.module:Name` (or `package.module.Name`).

  The current directory is put on `sys.path` first, as `python -m` does.

  Raises:
    ConversionError(6): the module or name cannot be imported.
  """
  module_name, sep, attr = spec.partition(':')
  if not sep:
    module_name, _, attr = spec.rpartition('.')
  if not module_name or not attr:
    raise ConversionError(NOT_IMPORTABLE, f'--model {spec!r} is not of the form '
                          'package.module:ClassName.')
  if os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())
  try:
    module = importlib.import_module(module_name)
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(NOT_IMPORTABLE, f'cannot import module {module_name!r} for --model '
                          f'{spec!r}: {type(e).__name__}: {e}. Run gmn-convert from the folder '
                          'that holds your code or add it to PYTHONPATH.') from e
  obj = module
  for part in attr.split('.'):
    if not hasattr(obj, part):
      public = sorted(n for n in dir(module) if not n.startswith('_'))
      raise ConversionError(NOT_IMPORTABLE, f'module {module_name!r} has no {attr!r}; it '
                            f'defines {public[:20]}.')
    obj = getattr(obj, part)
  return obj


def is_nnx_module(obj: Any) -> bool:
  from flax import nnx  # pylint: disable=g-import-not-at-top
  return isinstance(obj, nnx.Module)


def build_model(model: Any, model_args: Mapping[str, Any] | None = None) -> Any:
  """A linen or nnx module from a module, a module class or a factory (plus its arguments).

  nnx constructors that take `rngs` get `nnx.Rngs(0)` unless `model_args` has one.

  Raises:
    ConversionError(6): the object is not a Flax module or cannot be built.
  """
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  if isinstance(model, str):
    model = import_model(model)
  if isinstance(model, (nn.Module, nnx.Module)):
    return model
  if not callable(model):
    raise ConversionError(NOT_IMPORTABLE, f'--model names {model!r}, which is neither a Flax '
                          'module class nor a function returning a module.')
  kwargs = dict(model_args or {})
  try:  # a class's own __init__: nnx's metaclass hides it behind (*args, **kwargs)
    init = model.__init__ if isinstance(model, type) else model
    accepts_rngs = 'rngs' in inspect.signature(init).parameters
  except (TypeError, ValueError):
    accepts_rngs = False
  add_rngs = accepts_rngs and 'rngs' not in kwargs

  def build():  # rngs made inside, so that nnx.eval_shape may trace them
    return model(**kwargs, **({'rngs': nnx.Rngs(0)} if add_rngs else {}))
  name = getattr(model, '__name__', repr(model))
  linen_class = isinstance(model, type) and issubclass(model, nn.Module)
  built = None if linen_class else abstract_nnx(build)
  if built is None:
    try:
      built = build()
    except Exception as e:  # pylint: disable=broad-except
      raise ConversionError(NOT_IMPORTABLE, f'cannot build {name}(**{dict(model_args or {})}): '
                            f'{type(e).__name__}: {e}. Check --model-args.') from e
  if not isinstance(built, (nn.Module, nnx.Module)):
    raise ConversionError(NOT_IMPORTABLE, f'{name}(...) returned a {type(built).__name__}, not '
                          'a flax.linen or flax.nnx Module.')
  return built


def abstract_nnx(build) -> Any:
  """An nnx module built without running its initialisers (they compile one by one on CPU and
  their values are overwritten by the checkpoint's anyway): `nnx.eval_shape`, then zeros (and
  fixed random keys) in place of every shape. None when that does not give an nnx module."""
  from flax import nnx  # pylint: disable=g-import-not-at-top
  try:
    abstract = nnx.eval_shape(build)
    if not isinstance(abstract, nnx.Module):
      return None
    graphdef, state = nnx.split(abstract)

    def concrete(x):
      if not isinstance(x, jax.ShapeDtypeStruct):
        return x
      if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.split(jax.random.key(0), x.shape) if x.shape else jax.random.key(0)
      return jnp.zeros(x.shape, x.dtype)
    return nnx.merge(graphdef, jax.tree_util.tree_map(concrete, state))
  except Exception:  # pylint: disable=broad-except
    return None


def example_inputs(inputs: Sequence[Any]) -> list[jax.Array]:
  """Arrays from arrays, shapes (float32 zeros) or `jax.ShapeDtypeStruct`s (zeros)."""
  out = []
  for x in inputs:
    if isinstance(x, jax.ShapeDtypeStruct):
      out.append(jnp.zeros(x.shape, x.dtype))
    elif isinstance(x, (tuple, list)) and all(isinstance(d, (int, np.integer)) for d in x):
      out.append(jnp.zeros(tuple(x), jnp.float32))
    else:
      out.append(jnp.asarray(x))
  return out


def model_failed(what: str, e: Exception) -> ConversionError:
  return ConversionError(UNSUPPORTED, f'{what}: {type(e).__name__}: {e}')


def linen_template(model, inputs, call_kwargs) -> Any:
  def init():
    key = jax.random.key(0)
    return model.init({'params': key, 'dropout': key}, *inputs, **call_kwargs)
  try:
    shapes = jax.eval_shape(init)
  except Exception as e:  # pylint: disable=broad-except
    raise model_failed(f'{type(model).__name__}.init fails on inputs of shapes '
                        f'{[tuple(x.shape) for x in inputs]} (check --input-shape and '
                        '--call-kwargs)', e) from e
  return {k: v for k, v in dict(shapes).items()
          if k not in _NOT_VARIABLES and all(is_float(l) for l in jax.tree_util.tree_leaves(v))}


# ---- the conversion -------------------------------------------------------------------------

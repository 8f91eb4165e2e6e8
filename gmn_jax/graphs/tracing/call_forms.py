"""`trace`'s two call forms, checked before anything is traced. Host-side.

Linen: `trace(model, variables, *example_args)` with `variables = model.init(key, *args)`.
nnx: `trace(module, *example_args)`; the module holds its variables. A call in the other form
fails deep inside flax with an error that does not say what to do; `check_call_form` names the
mistake and the right call instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

_LINEN_FORM = ('trace(model, variables, *example_args) with variables = '
               'model.init(jax.random.key(0), *example_args)')
_NNX_FORM = 'trace(module, *example_args)'


def _describe(value: Any) -> str:
  shape = getattr(value, 'shape', None)
  if shape is not None:
    return f'an array of shape {tuple(shape)} ({type(value).__name__})'
  return f'a {type(value).__name__}'


def check_call_form(model: Any, variables: Any, is_nnx: bool) -> None:
  """Raises if `trace(model, variables, ...)` is not in `model`'s call form.

  Args:
    model: the Flax module given to `trace`.
    variables: `trace`'s second argument (for nnx, the first example argument or None).
    is_nnx: whether `model` is an `nnx.Module`.

  Raises:
    TypeError: a linen model without its variables (an input, or nothing, where they go), or
      nnx variables given beside an nnx module (the linen call form).
    ValueError: linen variables without their `params` collection (the collection's contents
      alone, e.g. `variables['params']`).
  """
  name = type(model).__name__
  if is_nnx:
    from flax import nnx  # pylint: disable=g-import-not-at-top
    looks_like_state = isinstance(variables, nnx.State) or (
        isinstance(variables, Mapping) and 'params' in variables)
    if not looks_like_state and isinstance(variables, Mapping):
      params = nnx.state(model, nnx.Param)
      looks_like_state = bool(variables) and set(variables) == set(params.keys())
    if looks_like_state:
      raise TypeError(f'{name} is an nnx module: it holds its own variables, so call '
                      f'{_NNX_FORM} without them (got {_describe(variables)} where the first '
                      'input goes). To trace other values, nnx.update(module, state) first.')
    return
  if variables is None or not isinstance(variables, Mapping):
    got = 'no variables' if variables is None else _describe(variables)
    hint = (' (an input where the variables go?)' if isinstance(variables, np.ndarray)
            or hasattr(variables, 'shape') else '')
    raise TypeError(f'{name} is a linen model: call {_LINEN_FORM}; got {got}{hint}.')
  if 'params' not in variables:
    keys = sorted(map(str, variables))
    raise ValueError(f'the variables of linen model {name} have no "params" collection (their '
                     f'keys: {keys[:8]}{" ..." if len(keys) > 8 else ""}): pass everything '
                     'model.init returned ({"params": ..., "batch_stats": ...}); the params '
                     'collection alone goes in as {"params": params}. Call form: '
                     f'{_LINEN_FORM}.')

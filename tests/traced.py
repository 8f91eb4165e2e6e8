"""The test models of `models.py`, traced once per process."""

from __future__ import annotations

import functools
from typing import Any, Callable

import gmn_jax
import models
from flax import nnx


@functools.lru_cache(maxsize=None)
def traced(name: str) -> tuple[gmn_jax.ParameterGraph, Any, Callable[[Any], Any]]:
  """(parameter graph, variables, variables -> model output) for the named test model."""
  model, variables, args, kwargs = models.get(name)
  if variables is None:  # nnx: the graph covers the module's Param and BatchStat state
    pg = gmn_jax.trace(model, *args)
    graphdef, variables, rest = nnx.split(model, (nnx.Param, nnx.BatchStat), ...)
    return pg, variables, lambda v: nnx.merge(graphdef, v, rest)(*args)
  pg = gmn_jax.trace(model, variables, *args, **kwargs)
  return pg, variables, lambda v: model.apply(v, *args, **kwargs)

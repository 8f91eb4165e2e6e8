"""Shared fixtures: the test models of `tests/support/models.py`, traced once per process."""

from __future__ import annotations

import functools
from typing import Any, Callable

import pytest
from flax import nnx

import gmn_jax
from tests.support import models


@functools.lru_cache(maxsize=None)
def _traced(name: str) -> tuple[gmn_jax.ParameterGraph, Any, Callable[[Any], Any]]:
  model, variables, args, kwargs = models.get(name)
  if variables is None:  # nnx: the graph covers the module's Param and BatchStat state
    pg = gmn_jax.trace(model, *args)
    graphdef, variables, rest = nnx.split(model, (nnx.Param, nnx.BatchStat), ...)
    return pg, variables, lambda v: nnx.merge(graphdef, v, rest)(*args)
  pg = gmn_jax.trace(model, variables, *args, **kwargs)
  return pg, variables, lambda v: model.apply(v, *args, **kwargs)


@pytest.fixture(scope='session')
def traced() -> Callable[[str], tuple[gmn_jax.ParameterGraph, Any, Callable[[Any], Any]]]:
  """`traced(name)`: (parameter graph, variables, variables -> model output) of a test model."""
  return _traced

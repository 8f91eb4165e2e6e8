"""Shared fixtures: the test models of `tests/support/models.py`, traced once per process.

One JAX persistent compilation cache serves the whole run: the pytest-xdist workers, the
notebook kernels and the multi-device subprocesses. They compile many identical programs
(every `fit` builds its step anew; a notebook runs its experiment's tiny config again in a
fresh kernel), and a program compiled once anywhere is then read from disk. The cache starts
empty in a temporary folder that the run removes at its end, so every run measures a cold
start; set `JAX_COMPILATION_CACHE_DIR` yourself to keep one between runs instead.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from typing import Any, Callable

# Before JAX is imported: its configuration reads these when it starts. Children (workers,
# kernels, subprocesses) inherit the environment and so the same folder.
_CACHE_OWNER = 'JAX_COMPILATION_CACHE_DIR' not in os.environ
if _CACHE_OWNER:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='gmn_jax_tests_jit_')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position
from flax import nnx  # pylint: disable=g-import-not-at-top,wrong-import-position

import gmn_jax  # pylint: disable=g-import-not-at-top,wrong-import-position
from tests.support import models  # pylint: disable=g-import-not-at-top,wrong-import-position


def pytest_unconfigure(config: pytest.Config) -> None:
  """The process that made the cache folder (the xdist controller) removes it at the end."""
  if _CACHE_OWNER and not hasattr(config, 'workerinput'):
    shutil.rmtree(os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)


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

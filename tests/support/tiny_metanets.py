"""Shared fixtures for the metanetwork tests: traced test models and tiny metanetworks.

Parameter graphs are traced once per process (`case`), and metanetwork parameters are drawn
with numpy from `jax.eval_shape(model.init, ...)` (`random_params`): a jitted `init` costs
seconds of XLA compilation per model on CPU, which the equivariance matrix cannot afford. The
draws are random and non-degenerate: every LayerNorm scale is near 1, and the residual
readout's gamma is 0.5 (its initial 0 would make the per-parameter readout the identity and
the equivariance check vacuous). The real `init` is exercised by the public-contract tests.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import gmn_jax
from tests.support import models

# Architecture families the tracer supports, one test model each.
FAMILIES = {
    'mlp': 'mlp',
    'cnn': 'cnn_gap',
    'cnn_bn': 'cnn_bn',
    'resnet': 'resnet',
    'transformer': 'vit',
    'embedding': 'text_transformer',
}


@functools.lru_cache(maxsize=None)
def case(name: str) -> tuple[gmn_jax.ParameterGraph, Any]:
  """`(pg, variables)` of a linen test model from `tests/support/models.py`, traced once."""
  model, variables, args, kwargs = models.get(name)
  return gmn_jax.trace(model, variables, *args, **kwargs), variables


@functools.lru_cache(maxsize=None)
def single_edge() -> tuple[gmn_jax.ParameterGraph, Any]:
  """Dense(1) without bias on one input: 2 nodes, 1 edge, no node parameters at all (every
  per-neuron parameter group is empty)."""
  model = nn.Dense(1, use_bias=False)
  x = jnp.ones((2, 1))
  variables = model.init(jax.random.key(0), x)
  return gmn_jax.trace(model, variables, x), variables


def tiny(name: str, **overrides) -> nn.Module:
  """A small, fast-compiling instance of a metanetwork or baseline (one block: equivariance
  of a stack follows from that of its blocks, and XLA compile time grows with depth)."""
  common = dict(readout_hidden=8, num_layers=1)
  configs = {
      'gmn': lambda: gmn_jax.GMN(node_dim=8, edge_dim=8, **common),
      'gmn_pna': lambda: gmn_jax.GMN(node_dim=8, edge_dim=8, aggregation='pna',
                                     use_globals=True, global_dim=8, **common),
      'gmn_forward': lambda: gmn_jax.GMN(node_dim=8, edge_dim=8, bidirectional=False,
                                         aggregation=('sum', 'max'), **common),
      'nggnn': lambda: gmn_jax.NGGNN(hidden_dim=8, **common),
      'ngt': lambda: gmn_jax.NGT(node_dim=8, edge_dim=8, num_heads=2, **common),
      'deepsets': lambda: gmn_jax.EdgeDeepSets(hidden_dim=8, readout_hidden=8),
      'statnn': lambda: gmn_jax.StatNN(hidden=(8,)),
  }
  return configs[name]().clone(**overrides)


def random_params(model: nn.Module, graphs, seed: int = 0) -> Any:
  """Random parameters with the shapes `model.init(key, graphs)` would give (numpy)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), graphs)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = getattr(path[-1], 'key', '')
    shape, dtype = leaf.shape, leaf.dtype
    if name == 'gamma':
      return np.full(shape, 0.5, dtype)
    if name == 'scale':
      return (1 + 0.1 * rng.normal(size=shape)).astype(dtype)
    if name == 'embedding':
      return rng.normal(size=shape).astype(dtype)
    if len(shape) >= 2:
      return (rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))).astype(dtype)
    return (0.1 * rng.normal(size=shape)).astype(dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)

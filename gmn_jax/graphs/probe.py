"""Probe features: what each neuron computes on a few fixed inputs (Kofinas et al. 2024, §3).

A traced model's program is run on probe inputs and each neuron's value is read where the model
uses it: hidden and input neurons as they enter the next Dense or convolution (after their
bias, activation and pooling), output neurons at the model's output. A neuron spread over
batch or spatial positions gives its mean. The result is one number per (neuron, probe input),
`nodes['probe']` `[n_node, K]` of the parameter graph, and it moves with the symmetries: a
permutation of hidden neurons permutes its rows, and a ReLU neuron rescaled by c (or a tanh
neuron flipped) scales its row by c (flips it), as `scaling.apply_factors` does.

Where it departs: the paper learns its probe inputs (INR coordinates) end to end; these are
fixed inputs chosen by the caller (e.g. random noise, so no data set is needed), computed once
per network in the data path, where the metanetwork reads them as node features.

Neurons that never enter a Dense or convolution and are not outputs (e.g. attention heads,
statistics) get zeros and a False `probe_mask`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# A point where neuron values are read: (the call path of enclosing equations, the
# equation's id) -> (which operand, its neuron labels at the example input's shape).
PointKey = tuple[tuple[int, ...], int]


def subjaxpr(eqn) -> tuple[Any, list[Any]] | None:
  """The (jaxpr, consts) an equation calls (pjit, custom_jvp, remat, ...), or None."""
  for key in ('jaxpr', 'call_jaxpr', 'fun_jaxpr'):
    sub = eqn.params.get(key)
    if sub is None:
      continue
    if hasattr(sub, 'jaxpr') and hasattr(sub, 'consts'):  # ClosedJaxpr
      return sub.jaxpr, list(sub.consts)
    if hasattr(sub, 'eqns'):
      return sub, []
  return None


@dataclasses.dataclass(frozen=True)
class ProbeProgram:
  """A traced model's program and where its neurons' values are read. Built by `trace`.

  Attributes:
    closed: the jaxpr of `fn(leaves, *arrays)` that the tracer walked.
    points: per read point, (operand index, neuron labels), labels -1 where no neuron.
    output_labels: neuron labels of the model's output.
    input_shapes: shapes of the example arrays (one probe input has these shapes).
    n_node: number of neurons (graph nodes).
  """

  closed: Any
  points: dict[PointKey, tuple[int, np.ndarray]]
  output_labels: np.ndarray
  input_shapes: tuple[tuple[int, ...], ...]
  n_node: int

  def _run(self, jaxpr, consts, args, path: tuple[int, ...], seen: dict[PointKey, Any]):
    env: dict[Any, Any] = {}
    read = lambda atom: atom.val if hasattr(atom, 'val') else env[atom]
    for var, value in zip(jaxpr.constvars, consts):
      env[var] = value
    for var, value in zip(jaxpr.invars, args):
      env[var] = value
    for eqn in jaxpr.eqns:
      ins = [read(a) for a in eqn.invars]
      point = self.points.get((path, id(eqn)))
      if point is not None:
        seen[(path, id(eqn))] = ins[point[0]]
      sub = subjaxpr(eqn)
      if sub is not None:
        outs = self._run(sub[0], sub[1], ins, path + (id(eqn),), seen)
      else:
        outs = eqn.primitive.bind(*ins, **eqn.params)
        outs = outs if eqn.primitive.multiple_results else [outs]
      for var, out in zip(eqn.outvars, outs):
        env[var] = out
    return [read(a) for a in jaxpr.outvars]

  @functools.cached_property
  def _owner(self) -> np.ndarray:
    """`[n_node + 1]` which read (points in program order, then the output) keeps each
    neuron's value: the first that holds it; -1 for none (the last entry is always -1)."""
    owner = np.full(self.n_node + 1, -1)
    reads = [labels for _, labels in self.points.values()] + [self.output_labels]
    for i, labels in enumerate(reads):
      ids = np.unique(labels[labels >= 0])
      owner[ids[owner[ids] < 0]] = i
    return owner

  @property
  def mask(self) -> np.ndarray:
    """`[n_node]` bool: which neurons have a value (host-side)."""
    return self._owner[:-1] >= 0

  def values(self, leaves: Sequence[jax.Array], arrays: Sequence[jax.Array]) -> jax.Array:
    """`[n_node]` per-neuron mean values on one probe input (arrays shaped like the example).
    Neurons never read hold 0. Jittable."""
    seen: dict[PointKey, Any] = {}
    outs = self._run(self.closed.jaxpr, self.closed.consts, list(leaves) + list(arrays), (),
                     seen)
    reads = [(seen[k], labels) for k, (_, labels) in self.points.items()]  # all are walked
    reads.append((outs[0], self.output_labels))
    n, owner = self.n_node, self._owner
    total = jnp.zeros(n + 1, jnp.float32)
    for i, (value, labels) in enumerate(reads):
      keep = (labels >= 0) & (owner[np.maximum(labels, 0)] == i)
      if not keep.any():
        continue
      segment = np.where(keep, labels, n).ravel()
      counts = np.maximum(np.bincount(segment, minlength=n + 1), 1)
      sums = jax.ops.segment_sum(jnp.ravel(value).astype(jnp.float32), segment, n + 1)
      total = total + jnp.where(owner == i, sums / counts, 0.0)
    return total[:n]


def probe_values(program: ProbeProgram, leaves: Sequence[jax.Array],
                 inputs: jax.Array | Sequence[jax.Array]) -> jax.Array:
  """`[n_node, K]`: each neuron's value on each of K probe inputs. Jittable.

  Args:
    program: the traced model's `ProbeProgram`.
    leaves: the parameter leaves, in the traced order.
    inputs: one array per example argument of `trace`, each `[K, *example shape]`.
  """
  inputs = [jnp.asarray(x) for x in (inputs if isinstance(inputs, (tuple, list)) else (inputs,))]
  if len(inputs) != len(program.input_shapes):
    raise ValueError(f'the model was traced with {len(program.input_shapes)} array inputs; '
                     f'got {len(inputs)} probe input arrays.')
  for i, (x, shape) in enumerate(zip(inputs, program.input_shapes)):
    if tuple(x.shape[1:]) != tuple(shape):
      raise ValueError(f'probe input {i} has shape {tuple(x.shape)}; it must be [K, *{shape}] '
                       '(K probes, each shaped like the example input given to trace).')
  per_probe = jax.vmap(lambda *xs: program.values(leaves, xs))(*inputs)  # [K, n_node]
  return per_probe.T

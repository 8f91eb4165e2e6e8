"""A zoo as a `GraphSet`: each architecture traced once, its members encoded in one vmapped
call. Every task that reads a zoo of several architectures encodes it here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from gmn_jax.graphs import finite
from gmn_jax.graphs.parameter_graph import ParameterGraph
from gmn_jax.graphs.tracing import trace
from gmn_jax.metanets.scalegmn import with_scaling_kinds
from gmn_jax.training.graph_set import GraphSet


@dataclasses.dataclass(frozen=True)
class Architecture:
  """The members of a zoo that share one architecture.

  Attributes:
    name: how reports name it (any JSON-able value, e.g. `(width, activation)`).
    model: the Flax module every member applies.
    variables: the members' variables, stacked: every leaf `[n_members, ...]`.
    table: per-member columns, each `[n_members]` (must hold the target column).
  """

  name: Any
  model: nn.Module
  variables: Any
  table: dict[str, np.ndarray]


@dataclasses.dataclass
class Encoded:
  """The zoo as graphs: a GraphSet, a row-aligned table, the kept architectures' names and
  how many members were dropped as diverged."""

  graphs: GraphSet
  table: dict[str, np.ndarray]
  architectures: list[Any]
  dropped: int


def noise_probes(example_input: np.ndarray, k: int, seed: int = 0) -> np.ndarray | None:
  """`[k, *example_input.shape]` standard normal probe inputs (None when k is 0). Host-side."""
  if not k:
    return None
  shape = (k,) + tuple(example_input.shape)
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def encode_architectures(architectures: Iterable[Architecture], example_input: np.ndarray,
                         target: str, probes: int = 0, max_abs_param: float | None = np.inf,
                         scaling_kinds: bool = False, packing_slack: float | None = None,
                         check: Callable[[ParameterGraph], None] | None = None) -> Encoded:
  """Traces each architecture once and encodes its members in one vmapped call. Host-side.

  Args:
    architectures: the zoo's groups of members.
    example_input: an input of the zoo's networks as `trace` takes it (batch of one).
    target: the table column that becomes `GraphSet.targets` (as float32).
    probes: random-noise probe inputs (`noise_probes`) whose per-neuron values every graph
      carries as node features; 0: weights only.
    max_abs_param: members with a parameter larger than this in magnitude, or not finite, are
      dropped as diverged and counted; None: every member is kept, and a member that is not
      finite is refused.
    scaling_kinds: add each neuron's scaling kind (`metanets.with_scaling_kinds`, read by
      ScaleGMN).
    packing_slack: of the `GraphSet` (None: its default).
    check: called with each traced graph (e.g. to refuse an unexpected architecture).

  Returns:
    The encoded zoo; architectures whose every member was dropped are left out.

  Raises:
    ValueError: with `max_abs_param=None`, members whose parameters are not finite; an
      encoding that is not finite (probe outputs that overflow), naming its rows.
  """
  inputs = noise_probes(example_input, probes)
  templates, stacked, tables, names, dropped = [], [], [], [], 0
  for arch in architectures:
    variables, n = arch.variables, len(next(iter(arch.table.values())))
    if max_abs_param is not None:
      largest = np.max([np.abs(l).reshape(len(l), -1).max(1)
                        for l in jax.tree.leaves(variables)], axis=0)
      kept = (largest <= max_abs_param) & finite.finite_rows(variables)
      dropped += int((~kept).sum())
      rows = np.flatnonzero(kept)
      if rows.size == 0:
        continue
      if rows.size < n:
        variables = jax.tree.map(lambda a: a[rows], variables)
    else:  # under jit, encode cannot refuse NaN itself
      finite.check_rows(variables, f'zoo {arch.name}')
      rows = np.arange(n)
    pg = trace(arch.model, jax.tree.map(lambda a: a[0], variables), example_input)
    if check is not None:
      check(pg)
    encoded = jax.jit(jax.vmap(lambda v, pg=pg: pg.encode(v, inputs)))(variables)
    finite.check_encoded(encoded, f'zoo {arch.name} (rows kept)')
    templates.append(pg)
    stacked.append(with_scaling_kinds(encoded, pg) if scaling_kinds else encoded)
    tables.append({k: v[rows] for k, v in arch.table.items()})
    names.append(arch.name)
  if not tables:
    raise ValueError('every member of the zoo was dropped as diverged (parameters larger '
                     f'than {max_abs_param} or not finite)')
  table = {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}
  template_of = np.concatenate([np.full(len(t[target]), i) for i, t in enumerate(tables)])
  row_of = np.concatenate([np.arange(len(t[target])) for t in tables])
  extra = {} if packing_slack is None else {'packing_slack': packing_slack}
  graphs = GraphSet(templates, stacked, template_of, row_of, table[target].astype(np.float32),
                    **extra)
  return Encoded(graphs, table, names, dropped)

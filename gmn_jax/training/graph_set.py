"""GraphSet: a data set of encoded parameter graphs (one or more architectures) with targets.

Host-side (numpy). Each architecture's graphs are encoded in one vmapped call and kept as one
stacked `GraphsTuple`; a sample is a (template, row) pair. Batches are padded to one `Budget`
so a training run compiles its step once, and can be augmented with random symmetries: a
permutation of the hidden neurons (drawn from a pool per template) and, for ReLU and tanh/sin
neurons, a rescaling or sign flip (`scaling.py`), which the metanetworks are not invariant to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import jraph
import numpy as np

from gmn_jax.metanets.batching import Budget, batch, budget_for
from gmn_jax.graphs.parameter_graph import ParameterGraph
from gmn_jax.graphs.scaling import apply_factors, random_factors, scaling_kinds


class GraphSet:
  """Encoded graphs of several architectures, with a scalar target per graph.

  Args:
    templates: one ParameterGraph per architecture.
    stacked: per template, the output of `jax.vmap(pg.encode)` over its members.
    template_of: `[n]` which template each sample belongs to.
    row_of: `[n]` the sample's row in its template's stacked graphs.
    targets: `[n]` float targets (e.g. test accuracy).
  """

  def __init__(self, templates: Sequence[ParameterGraph], stacked: Sequence[jraph.GraphsTuple],
               template_of: np.ndarray, row_of: np.ndarray, targets: np.ndarray):
    self.templates = list(templates)
    self.stacked = [jax.device_get(s) for s in stacked]
    self.template_of = np.asarray(template_of)
    self.row_of = np.asarray(row_of)
    self.targets = np.asarray(targets, np.float32)
    self._symmetries: dict[int, list] = {}
    self._scaling_kinds: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    return len(self.targets)

  def graph(self, i: int, rng: np.random.Generator | None = None,
            max_scale: float = 1.0) -> jraph.GraphsTuple:
    """Sample i as a single graph. With `rng`: relabelled by a random permutation symmetry
    and, if `max_scale` > 1, its ReLU neurons rescaled by factors log-uniform in
    `[1 / max_scale, max_scale]` and its tanh/sin neurons sign-flipped at random."""
    t, r = int(self.template_of[i]), int(self.row_of[i])
    g = jax.tree.map(lambda a: a[r], self.stacked[t])
    if rng is not None:
      pool = self._symmetry_pool(t)
      g = pool[rng.integers(len(pool))].apply_graph(g)
      if max_scale > 1:
        if t not in self._scaling_kinds:
          self._scaling_kinds[t] = scaling_kinds(self.templates[t])
        g = apply_factors(g, random_factors(self._scaling_kinds[t], rng, max_scale))
    return g

  def _symmetry_pool(self, t: int, size: int = 32) -> list:
    if t not in self._symmetries:
      pg = self.templates[t]
      self._symmetries[t] = [pg.random_symmetry(1000 * t + k) for k in range(size)]
    return self._symmetries[t]

  def budget(self, batch_size: int) -> Budget:
    return budget_for(self.templates, batch_size)

  def batches(self, indices: np.ndarray, batch_size: int, budget: Budget,
              rng: np.random.Generator | None = None, max_scale: float = 1.0,
              shards: int = 1) -> Iterator[tuple[jraph.GraphsTuple, np.ndarray, np.ndarray]]:
    """(padded graphs, targets [n_graph], mask [n_graph]) for consecutive chunks of `indices`,
    augmented as in `graph` when `rng` is given.

    Every batch has the same padded shapes (`budget`), the last one included. With
    `shards` > 1 (data parallelism) each chunk of `batch_size` is split in order into
    `shards` sub-batches of `batch_size // shards` graphs, each padded to `budget` (a budget
    for the sub-batch size) and stacked: every array gains a leading axis `[shards, ...]`
    (targets and mask `[shards, n_graph]`). The same graphs are drawn, with the same
    augmentation, whatever `shards` is.
    """
    if batch_size % shards:
      raise ValueError(f'batch_size {batch_size} is not divisible by {shards} shards')
    per_shard = batch_size // shards
    for start in range(0, len(indices), batch_size):
      chunk = indices[start:start + batch_size]
      drawn = [self.graph(int(i), rng, max_scale) for i in chunk]
      parts = [self._padded(drawn[k:k + per_shard], chunk[k:k + per_shard], budget)
               for k in range(0, per_shard * shards, per_shard)]
      yield parts[0] if shards == 1 else jax.tree.map(lambda *a: np.stack(a), *parts)

  def _padded(self, graphs: list[jraph.GraphsTuple], chunk: np.ndarray, budget: Budget
              ) -> tuple[jraph.GraphsTuple, np.ndarray, np.ndarray]:
    targets = np.zeros(budget.n_graph, np.float32)
    mask = np.zeros(budget.n_graph, bool)
    targets[:len(chunk)], mask[:len(chunk)] = self.targets[chunk], True
    if graphs:
      return batch(graphs, budget), targets, mask
    # A shard left empty by the last, short chunk: padding only (node type INPUT, no edges
    # between real nodes), so `graph_mask` and the loss mask both drop it.
    like = batch([self.graph(0)], budget)
    empty = jax.tree.map(np.zeros_like, like)
    n_node = np.zeros(budget.n_graph, np.int32)
    n_edge = np.zeros(budget.n_graph, np.int32)
    n_node[0], n_edge[0] = budget.n_node, budget.n_edge
    return empty._replace(n_node=n_node, n_edge=n_edge), targets, mask

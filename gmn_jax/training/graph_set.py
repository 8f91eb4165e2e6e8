"""GraphSet: a data set of encoded parameter graphs (one or more architectures) with targets.

Host-side (numpy). Each architecture's graphs are encoded in one vmapped call and kept as one
stacked `GraphsTuple`; a sample is a (template, row) pair. Batches are padded to one `Budget`
so a training run compiles its step once, and can be augmented with random symmetries: a
permutation of the hidden neurons (drawn from a pool per template) and, for ReLU and tanh/sin
neurons, a rescaling or sign flip (`scaling.py`), which the metanetworks are not invariant to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import jax
import jraph
import numpy as np

from gmn_jax.metanets.batching import Budget, batch, budget_for
from gmn_jax.metanets.layer_statistics import LayerStatistics, fit_layer_statistics
from gmn_jax.graphs.parameter_graph import ParameterGraph
from gmn_jax.graphs.scaling import apply_factors, random_factors, scaling_kinds

# An augmentation of one (unbatched) graph that is not a symmetry: (graph, rng) -> graph.
Perturb = Callable[[jraph.GraphsTuple, np.random.Generator], jraph.GraphsTuple]


class GraphSet:
  """Encoded graphs of several architectures, with a scalar target per graph.

  Args:
    templates: one ParameterGraph per architecture.
    stacked: per template, the output of `jax.vmap(pg.encode)` over its members.
    template_of: `[n]` which template each sample belongs to.
    row_of: `[n]` the sample's row in its template's stacked graphs.
    targets: `[n]` float targets (e.g. test accuracy).
    packing_slack: None: `budget` makes room for the `batch_size` largest graphs and batches
      are never cut. A float s: room for `batch_size` graphs of the set's mean size times s,
      plus its largest graph, where that is smaller, and `batches` closes a batch early when
      its next graph would not fit (see `budget`).
  """

  def __init__(self, templates: Sequence[ParameterGraph], stacked: Sequence[jraph.GraphsTuple],
               template_of: np.ndarray, row_of: np.ndarray, targets: np.ndarray,
               packing_slack: float | None = None):
    self.templates = list(templates)
    self.stacked = [jax.device_get(s) for s in stacked]
    self.template_of = np.asarray(template_of)
    self.row_of = np.asarray(row_of)
    self.targets = np.asarray(targets, np.float32)
    self.packing_slack = packing_slack
    self._sizes = np.array([(pg.n_node, pg.n_edge) for pg in self.templates]).reshape(-1, 2)
    self._symmetries: dict[int, list] = {}
    self._scaling_kinds: dict[int, np.ndarray] = {}

  def __len__(self) -> int:
    return len(self.targets)

  def graph(self, i: int, rng: np.random.Generator | None = None,
            max_scale: float = 1.0, perturb: Perturb | None = None,
            permute: bool = True) -> jraph.GraphsTuple:
    """Sample i as a single graph. With `rng`: `perturb(graph, rng)` first (when given: an
    augmentation that is no symmetry, e.g. `inr_classification.augment.perturb_inr`), then
    relabelled by a random permutation symmetry (unless `permute` is False) and, if
    `max_scale` > 1, its ReLU neurons rescaled by factors log-uniform in
    `[1 / max_scale, max_scale]` and its tanh/sin neurons sign-flipped at random."""
    t, r = int(self.template_of[i]), int(self.row_of[i])
    g = jax.tree.map(lambda a: a[r], self.stacked[t])
    if rng is not None:
      if perturb is not None:
        g = perturb(g, rng)
      if permute:
        pool = self._symmetry_pool(t)
        g = pool[rng.integers(len(pool))].apply_graph(g)
      if max_scale > 1:
        if t not in self._scaling_kinds:
          self._scaling_kinds[t] = scaling_kinds(self.templates[t])
        g = apply_factors(g, random_factors(self._scaling_kinds[t], rng, max_scale))
    return g

  def layer_statistics(self, indices: np.ndarray, max_layers: int = 64) -> LayerStatistics:
    """Per-layer mean and standard deviation of the samples `indices` as encoded (not
    augmented): `fit_layer_statistics` of their graphs, e.g. of the training split for a
    metanetwork's `layer_statistics`. Host-side."""
    return fit_layer_statistics([self.graph(int(i)) for i in indices], max_layers)

  def _symmetry_pool(self, t: int, size: int = 32) -> list:
    if t not in self._symmetries:
      pg = self.templates[t]
      self._symmetries[t] = [pg.random_symmetry(1000 * t + k) for k in range(size)]
    return self._symmetries[t]

  def budget(self, batch_size: int) -> Budget:
    """One padded shape for every batch of at most `batch_size` graphs of this set.

    Room for the `batch_size` largest graphs; with `packing_slack` s, room for `batch_size`
    graphs of the set's mean size times s, plus its largest graph, where that is smaller:
    `batches` then closes a batch early when its next graph would not fit, and a mix of small
    and large architectures is not padded as if every graph were the largest (the diverse
    zoo's ViTs among its MLPs and CNNs, s = 1.25: 3x fewer padded edges, a 3x faster GMN
    step). A set of one architecture gets the first either way.
    """
    worst = budget_for(self.templates, batch_size)
    if self.packing_slack is None:
      return worst
    sizes = self._sizes[self.template_of]
    typical = (np.ceil(self.packing_slack * batch_size * sizes.mean(axis=0))
               + sizes.max(axis=0) + (1, 0))
    round_up = lambda x: int(-(-int(x) // 8) * 8)
    return worst._replace(n_node=min(worst.n_node, round_up(typical[0])),
                          n_edge=min(worst.n_edge, round_up(typical[1])))

  def steps(self, indices: np.ndarray, batch_size: int, budget: Budget, shards: int = 1
            ) -> list[list[np.ndarray]]:
    """How `batches` groups `indices`, in order: per step, one run of consecutive indices
    per shard, each of at most `batch_size // shards` graphs and closed early when its next
    graph would overflow `budget` (nodes, one kept for padding, or edges); the last step may
    hold fewer runs (its other shards are padding).

    Raises:
      ValueError: a graph larger than `budget` on its own.
    """
    per_shard = batch_size // shards
    n_node, n_edge = budget.n_node - 1, budget.n_edge
    largest = self._sizes[np.unique(self.template_of[indices])].max(axis=0, initial=0)
    if per_shard * largest[0] <= n_node and per_shard * largest[1] <= n_edge:  # never cut
      runs = [indices[k:k + per_shard] for k in range(0, len(indices), per_shard)]
      return [runs[s:s + shards] for s in range(0, len(runs), shards)]
    runs, start, nodes, edges = [], 0, 0, 0
    for k, (n, e) in enumerate(self._sizes[self.template_of[indices]]):
      if n > n_node or e > n_edge:
        raise ValueError(f'sample {indices[k]} ({n} nodes, {e} edges) is larger than the '
                         f'budget {budget}: make the budget with this GraphSet\'s `budget`')
      if k - start == per_shard or nodes + n > n_node or edges + e > n_edge:
        runs.append(indices[start:k])
        start, nodes, edges = k, 0, 0
      nodes, edges = nodes + n, edges + e
    if start < len(indices):
      runs.append(indices[start:])
    return [runs[s:s + shards] for s in range(0, len(runs), shards)]

  def batches(self, indices: np.ndarray, batch_size: int, budget: Budget,
              rng: np.random.Generator | None = None, max_scale: float = 1.0,
              shards: int = 1, perturb: Perturb | None = None, permute: bool = True
              ) -> Iterator[tuple[jraph.GraphsTuple, np.ndarray, np.ndarray]]:
    """(padded graphs, targets [n_graph], mask [n_graph]) for the consecutive runs of
    `indices` that `steps` plans, augmented as in `graph` (`max_scale`, `perturb`,
    `permute`) when `rng` is given.

    Every batch has the same padded shapes (`budget`), the last one included. With
    `shards` > 1 (data parallelism) each step is `shards` sub-batches of up to
    `batch_size // shards` graphs, each padded to `budget` (a budget for the sub-batch size)
    and stacked: every array gains a leading axis `[shards, ...]` (targets and mask
    `[shards, n_graph]`). The same graphs are drawn, with the same augmentation, whatever
    `shards` is, as long as no batch is closed early.
    """
    if batch_size % shards:
      raise ValueError(f'batch_size {batch_size} is not divisible by {shards} shards')
    for step in self.steps(indices, batch_size, budget, shards):
      parts = [self._padded([self.graph(int(i), rng, max_scale, perturb, permute) for i in run],
                           run, budget)
               for run in step]
      parts += [self._padded([], step[0][:0], budget)] * (shards - len(step))
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

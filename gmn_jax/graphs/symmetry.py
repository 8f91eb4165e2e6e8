"""Random function-preserving permutations of a traced model's hidden neurons.

The constraints come from the trace as data (`Architecture.ties`, `.segments`, `.block_ties`):

- *Ties*: neurons that must move together (a residual join ties its two inputs and its sum; a
  query neuron is tied to the key neuron it is contracted with; every use of a shared
  parameter is tied to its first use, `Architecture.tie_shared_uses`, so one permutation
  moves all uses; a relative position bias is tied to its head). Tied neurons form a *unit*.
- *Orbits*: units interchangeable with each other, i.e. made of neurons from the same groups
  (and the same slices of them). Units holding an input, output or parameter node never move.
- *Blocks*: attention heads and convolution groups. An orbit split into blocks moves blocks as
  wholes (one block permutation shared by every orbit tied to the same heads or conv groups)
  and permutes units within each block independently. So Q/K and V/O get different within-head
  permutations but the same head permutation.

Host-side (numpy); the drawn `Symmetry` is applied with jittable gathers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import jraph
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from gmn_jax.graphs.architecture import NodeType
from gmn_jax.graphs.tracing.values import UnsupportedModelError


class SymmetryError(UnsupportedModelError):
  """The symmetry constraints found for a model are inconsistent, or a drawn symmetry changes
  the traced program's output: no symmetry of this model is to be used."""


@dataclasses.dataclass(frozen=True)
class Symmetry:
  """One permutation of the hidden neurons, with the edge permutation it induces.

  `node_perm[i]` is the new index of node i; `edge_perm[e]` the new index of edge e.
  """

  graph: Any  # the ParameterGraph it belongs to
  node_perm: np.ndarray
  edge_perm: np.ndarray

  def apply_graph(self, graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
    """Relabels the nodes of a graph of this template (and moves its edges with them).

    The result is laid out in the template's node and edge order, so that
    `sym.apply_graph(pg.encode(v))` equals `pg.encode(sym.apply(v))` exactly. Jittable.
    """
    node_src = np.argsort(self.node_perm)
    edge_src = np.argsort(self.edge_perm)
    nodes = jax.tree_util.tree_map(lambda a: a[node_src], graph.nodes)
    edges = jax.tree_util.tree_map(lambda a: a[edge_src], graph.edges)
    return graph._replace(nodes=nodes, edges=edges)

  def apply(self, variables: Any) -> Any:
    """The permuted variables (same function, different neuron order). Jittable."""
    pg = self.graph
    return pg.decode(self.apply_graph(pg.encode(variables)))

  def parameter_source(self) -> np.ndarray:
    """`[n_params]` flat indices `src` with `flat(self.apply(v)) == flat(v)[src]`, where
    `flat` concatenates the raveled leaves: the permutation of the parameter scalars, found
    from the slot layout without running encode/decode. Host-side."""
    pg = self.graph
    slot = pg.slot_of
    n_weight, K, P = pg.n_edge * pg.kernel_size, pg.kernel_size, pg.node_param_size
    node_src, edge_src = np.argsort(self.node_perm), np.argsort(self.edge_perm)
    is_edge = slot < n_weight
    source_slot = np.where(
        is_edge, edge_src[np.minimum(slot // K, pg.n_edge - 1)] * K + slot % K,
        n_weight + node_src[np.clip((slot - n_weight) // P, 0, pg.n_node - 1)] * P
        + (slot - n_weight) % P)
    flat_at = np.full(n_weight + pg.n_node * P, -1, np.int64)
    flat_at[slot] = np.arange(len(slot))
    src = flat_at[source_slot]
    if (src < 0).any():
      raise SymmetryError('the drawn permutation moves a parameter to an empty slot (the '
                          'symmetry constraints found for this model are inconsistent).')
    return src

  def apply_nodes(self, values: jax.Array) -> jax.Array:
    """Permutes an array whose first axis indexes this template's nodes."""
    return jnp.asarray(values)[np.argsort(self.node_perm)]

  def apply_edges(self, values: jax.Array) -> jax.Array:
    """Permutes an array whose first axis indexes this template's edges."""
    return jnp.asarray(values)[np.argsort(self.edge_perm)]


def _components(n: int, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
  if pairs:
    a = np.concatenate([np.ravel(p[0]) for p in pairs])
    b = np.concatenate([np.ravel(p[1]) for p in pairs])
  else:
    a = b = np.zeros(0, np.int64)
  adjacency = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
  return connected_components(adjacency, directed=False)[1]


class Orbits:
  """The symmetry structure of one ParameterGraph; draws random symmetries from it."""

  def __init__(self, pg):
    self.pg = pg
    arch = pg.architecture
    n = pg.n_node
    self.unit = _components(n, arch.ties)
    group = arch.group_of(np.arange(n))
    # A neuron's key: its group and the slices of it that the model takes.
    segment_sig = [[] for _ in range(n)]
    for s, members in enumerate(arch.segments):
      for m in members:
        segment_sig[m].append(s)
    keys = [(int(group[i]), tuple(segment_sig[i])) for i in range(n)]
    # Members of one unit with the same group and slices (a rotary pair, the query heads of a
    # grouped-query head) are matched across units by their order in the group.
    rank: dict[tuple, int] = {}
    for i in range(n):
      unit_key = (int(self.unit[i]),) + keys[i]
      rank[unit_key] = rank.get(unit_key, -1) + 1
      keys[i] = keys[i] + (rank[unit_key],)
    self.keys = keys
    fixed_units = set(self.unit[np.isin(pg.node_type, [NodeType.INPUT, NodeType.OUTPUT,
                                                       NodeType.PARAMETER])])
    members: dict[int, list[int]] = {}
    for i in range(n):
      members.setdefault(int(self.unit[i]), []).append(i)
    self.members = members
    self.neuron_of = {(int(self.unit[i]), keys[i]): i for i in range(n)}
    signature = {u: tuple(sorted(keys[i] for i in ms)) for u, ms in members.items()}
    orbits: dict[tuple, list[int]] = {}
    for u in sorted(members):
      if u not in fixed_units:
        orbits.setdefault(signature[u], []).append(u)
    self.orbits = list(orbits.values())
    self.orbit_of = {u: o for o, units in enumerate(self.orbits) for u in units}
    self._blocks()

  def _blocks(self):
    """Block partitions of orbits and which orbits share a block permutation."""
    n_orbits = len(self.orbits)
    entries, partitions = [], {}
    for sides in self.pg.architecture.block_ties:
      placed = []
      for units in self._merged_blocks(sides):
        # A side's blocks, split by orbit: each orbit moves its share of every block.
        by_orbit: dict[int, list[list[int]]] = {}
        for k, us in enumerate(units):
          for u in us:
            by_orbit.setdefault(self.orbit_of.get(u, -1), [[] for _ in units])[k].append(u)
        pinned = -1 in by_orbit  # a side with fixed neurons pins the block permutation
        for o, parts in sorted(by_orbit.items()):
          if o == -1:
            continue
          parts = [tuple(p) for p in parts]
          if any(len(p) != len(parts[0]) for p in parts):
            pinned = True  # blocks that hold this orbit unevenly (e.g. per-head constants)
            parts = [p for p in parts if p]
          partitions.setdefault(o, set()).add(frozenset(parts))
          placed.append((o, parts))
        if pinned:
          placed.append(None)
      entries.append(placed)
    # Nested block structures (a grouped conv after a depthwise one) are held in place: such an
    # orbit keeps its blocks where they are and permutes only within their common refinement.
    self.partition: dict[int, list[tuple[int, ...]]] = {}
    conflicted = set()
    for o, found in partitions.items():
      if len(found) == 1:
        self.partition[o] = sorted(next(iter(found)))
        continue
      conflicted.add(o)
      signature = {}
      for p in found:
        for k, block in enumerate(sorted(p)):
          for u in block:
            signature.setdefault(u, []).append(k)
      meet = {}
      for u in self.orbits[o]:
        meet.setdefault(tuple(signature.get(u, ())), []).append(u)
      self.partition[o] = sorted(tuple(sorted(b)) for b in meet.values())
    links, fixed = [], set()
    for placed in entries:
      real = [p for p in placed if p is not None]
      if len(real) < len(placed) or any(o in conflicted for o, _ in real):
        fixed.update(o for o, _ in real)
        continue
      indices = []
      for o, units in real:
        index = {b: k for k, b in enumerate(self.partition[o])}
        indices.append((o, [index[us] for us in units]))
      for (oa, ka), (ob, kb) in zip(indices, indices[1:]):
        links.append((oa, ob, ka, kb))
    # Classes of orbits sharing a block permutation, with each orbit's block order aligned to
    # its class root: align[o][k] = root block index of orbit o's block k.
    self.block_class = np.arange(n_orbits)
    self.align: dict[int, np.ndarray] = {}
    adjacency: dict[int, list] = {}
    for oa, ob, ka, kb in links:
      adjacency.setdefault(oa, []).append((ob, ka, kb))
      adjacency.setdefault(ob, []).append((oa, kb, ka))
    self.fixed_classes = set()
    for root in sorted(self.partition):
      if root in self.align:
        continue
      self.align[root] = np.arange(len(self.partition[root]))
      stack, members = [root], [root]
      while stack:
        o = stack.pop()
        for other, k_here, k_there in adjacency.get(o, []):
          mapping = np.empty(len(self.partition[other]), np.int64)
          mapping[k_there] = self.align[o][k_here]
          if other in self.align:
            if not np.array_equal(self.align[other], mapping):
              raise SymmetryError('inconsistent block structure; cannot draw a symmetry')
            continue
          self.align[other] = mapping
          self.block_class[other] = root
          stack.append(other)
          members.append(other)
      if fixed.intersection(members):
        self.fixed_classes.add(root)

  def draw(self, key) -> Symmetry:
    if isinstance(key, (int, np.integer)):
      seed = int(key)
    else:
      seed = np.asarray(jax.random.key_data(key)).ravel().tolist()
    rng = np.random.default_rng(seed)
    class_perm: dict[int, np.ndarray] = {}
    unit_map: dict[int, int] = {}
    for o, units in enumerate(self.orbits):
      if o not in self.partition:
        for u, v in zip(units, rng.permutation(units)):
          unit_map[u] = int(v)
        continue
      root = int(self.block_class[o])
      blocks = self.partition[o]
      if root not in class_perm:
        n_blocks = len(self.partition[root])
        class_perm[root] = (np.arange(n_blocks) if root in self.fixed_classes
                            else rng.permutation(n_blocks))
      perm = class_perm[root]
      root_to_block = np.argsort(self.align[o])
      for k, block in enumerate(blocks):
        target = blocks[root_to_block[perm[self.align[o][k]]]]
        if len(target) != len(block):
          raise SymmetryError('blocks of different sizes cannot be permuted as wholes')
        for u, v in zip(block, rng.permutation(target)):
          unit_map[u] = int(v)
    n = self.pg.n_node
    node_perm = np.arange(n)
    for u, v in unit_map.items():
      for i in self.members[u]:
        node_perm[i] = self.neuron_of[(v, self.keys[i])]
    return Symmetry(self.pg, node_perm, self._edge_perm(node_perm))

  def _merged_blocks(self, sides: list[list[np.ndarray]]) -> list[list[tuple[int, ...]]]:
    """Each side's blocks as sorted unit ids, with blocks that share a unit (in any side)
    merged in every side: grouped-query heads that read the same key/value head move as one."""
    sides = [[tuple(sorted({int(self.unit[n]) for n in np.ravel(b)})) for b in blocks]
             for blocks in sides]
    n_blocks = len(sides[0])
    first: dict[tuple[int, int], int] = {}
    pairs = []
    for side, blocks in enumerate(sides):
      for k, units in enumerate(blocks):
        for u in units:
          pairs.append((first.setdefault((side, u), k), k))
    merged = _components(n_blocks, [(np.array([a for a, _ in pairs], np.int64),
                                     np.array([b for _, b in pairs], np.int64))])
    if len(np.unique(merged)) == n_blocks:
      return sides
    return [[tuple(sorted({u for k in np.flatnonzero(merged == m) for u in blocks[k]}))
             for m in np.unique(merged)] for blocks in sides]

  def components(self) -> list[np.ndarray]:
    """The nodes of each independent part of the symmetry: an orbit without blocks, or all
    orbits that share one block permutation (heads with their Q/K/V neurons)."""
    part_of = {o: (int(self.block_class[o]) if o in self.partition else -1 - o)
               for o in range(len(self.orbits))}
    nodes: dict[int, list[int]] = {}
    for o, units in enumerate(self.orbits):
      for u in units:
        nodes.setdefault(part_of[o], []).extend(self.members[u])
    return [np.array(sorted(n)) for n in nodes.values()]

  def restrict(self, sym: Symmetry, nodes: np.ndarray) -> Symmetry | None:
    """`sym` acting on `nodes` only (one of `components()`); None where it does not move them."""
    node_perm = np.arange(self.pg.n_node)
    node_perm[nodes] = sym.node_perm[nodes]
    if np.array_equal(node_perm, np.arange(self.pg.n_node)):
      return None
    return Symmetry(self.pg, node_perm, self._edge_perm(node_perm))

  def _edge_perm(self, node_perm: np.ndarray) -> np.ndarray:
    pg = self.pg
    n = np.int64(pg.n_node)
    key = (pg.senders.astype(np.int64) * n + pg.receivers) * 16 + pg.edge_type
    order = np.argsort(key)
    moved = (node_perm[pg.senders].astype(np.int64) * n + node_perm[pg.receivers]) * 16 \
        + pg.edge_type
    pos = np.searchsorted(key[order], moved)
    pos = np.minimum(pos, len(key) - 1)
    if not np.array_equal(key[order][pos], moved):
      moved = np.flatnonzero(node_perm != np.arange(len(node_perm)))
      arch = pg.architecture
      names = sorted({arch.groups[int(g)].name for g in arch.group_of(moved)})
      raise SymmetryError('the drawn neuron permutation does not map the parameter graph onto '
                          'itself (the symmetry constraints found for this model are '
                          f'inconsistent); groups moved: {", ".join(names)}. Please report '
                          'the model; do not augment it with random_symmetry.')
    return order[pos]

"""The slot layout of a parameter graph: where each parameter scalar becomes an edge entry or
a node parameter, computed once per architecture. Host-side (numpy, never under jit)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from gmn_jax.graphs.architecture import Architecture, NodeType


@dataclasses.dataclass(frozen=True)
class Static:
  """Host arrays of the template (never traced)."""

  node_type: np.ndarray
  node_layer: np.ndarray
  node_position: np.ndarray
  node_act: np.ndarray
  node_mask: np.ndarray  # [N, P]
  senders: np.ndarray
  receivers: np.ndarray
  edge_type: np.ndarray
  edge_op: np.ndarray
  edge_act: np.ndarray
  edge_count: np.ndarray  # [E] how many `weight` entries each edge holds (a prefix of K)


@dataclasses.dataclass(frozen=True)
class EdgePlacement:
  """Where one weight leaf's values sit in `edges['weight']`: rows [start, start + n) and the
  first `width` columns hold `leaf.transpose(perm).reshape(n, width)` when `perm` is set, else
  `leaf.ravel()[index]` (index -1 for empty slots)."""

  leaf: int
  start: int
  n: int
  width: int
  perm: tuple[int, ...] | None
  index: np.ndarray | None


def _slot_table(owner: np.ndarray, flat: np.ndarray, order_key: np.ndarray, n_owner: int,
                sentinel: int) -> np.ndarray:
  """[n_owner, width] table of flat indices: each owner's entries in `order_key` order."""
  order = np.lexsort((order_key, owner))
  owner, flat = owner[order], flat[order]
  counts = np.bincount(owner, minlength=n_owner)
  width = int(counts.max()) if counts.size and counts.max() > 0 else 1
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  slot = np.arange(len(owner)) - starts[owner]
  table = np.full((n_owner, width), sentinel, np.int64)
  table[owner, slot] = flat
  return table


def _find_transpose(local: np.ndarray, shape: tuple[int, ...]) -> tuple[int, ...] | None:
  """The axis permutation `perm` with `arange(size).reshape(shape).transpose(perm).ravel()
  == local`, if there is one (then encoding the leaf is a transpose, not a gather)."""
  if len(shape) > 5:
    return None
  base = np.arange(local.size).reshape(shape)
  for perm in itertools.permutations(range(len(shape))):
    candidate = base.transpose(perm)
    head = candidate.ravel()[:64] if candidate.size > 64 else candidate.ravel()
    if np.array_equal(head, local[:len(head)]) and np.array_equal(candidate.ravel(), local):
      return perm
  return None


@dataclasses.dataclass(frozen=True)
class Layout:
  """Where every parameter scalar sits in a graph of one architecture, and how to read it back."""

  static: Static
  node_leaves: list[int]  # leaves that hold node parameters
  node_gather: np.ndarray  # [N, P] index into the compact vector of those leaves
  kernel_size: int  # K, the width of edges['weight']
  edge_placements: list[EdgePlacement]
  decode_plan: list  # per leaf: ('transpose', placement, None) or ('gather', where, index)
  # [n_params] the slot of each parameter scalar: e * K + k for `edges['weight'][e, k]`,
  # E * K + n * P + p for `nodes['param'][n, p]` (each scalar has exactly one)
  leaf_source: np.ndarray


def build_layout(arch: Architecture) -> Layout:
  n_node, n_params = arch.n_neurons, arch.n_params
  node_type = np.full(n_node, int(NodeType.HIDDEN), np.int32)
  node_layer = np.zeros(n_node, np.int32)
  for g in arch.groups:
    node_type[g.start:g.start + g.size] = int(g.kind)
    node_layer[g.start:g.start + g.size] = g.depth
  node_position = np.full(n_node, -1, np.int32)
  for n, pos in arch.positions.items():
    node_position[n] = pos
  output = [n for n in arch.positions if node_type[n] != NodeType.INPUT]
  node_type[output] = int(NodeType.OUTPUT)
  for n, pos in arch.hidden_positions.items():
    node_position[n] = pos
  node_act = np.zeros(n_node, np.int32)
  node_act[output] = [arch.output_acts.get(n, arch.output_act) for n in output]

  # Node parameters, ordered by attachment then by flat index, gathered from a compact
  # vector of the attached leaves only.
  if arch.attachments:
    a_neuron = np.concatenate([a.neurons for a in arch.attachments])
    a_flat = np.concatenate([a.flat for a in arch.attachments])
    a_event = np.concatenate([np.full(len(a.flat), i) for i, a in enumerate(arch.attachments)])
  else:
    a_neuron = a_flat = a_event = np.zeros(0, np.int64)
  node_leaves = sorted(set(
      (np.searchsorted(arch.leaf_offsets, np.unique(a_flat), side='right') - 1).tolist()))
  compact = np.zeros(n_params + 1, np.int64)
  offset = 0
  for leaf in node_leaves:
    lo, hi = arch.leaf_offsets[leaf], arch.leaf_offsets[leaf + 1]
    compact[lo:hi] = offset + np.arange(hi - lo)
    offset += hi - lo
  compact[n_params] = offset  # the sentinel: an appended zero
  node_table = _slot_table(a_neuron, a_flat, a_event * (n_params + 1) + a_flat, n_node,
                           n_params)
  node_gather = compact[node_table]
  node_mask = node_table < n_params

  blocks = arch.edges
  senders = np.concatenate([b.senders for b in blocks]).astype(np.int32)
  receivers = np.concatenate([b.receivers for b in blocks]).astype(np.int32)
  sizes = [len(b.senders) for b in blocks]
  edge_type = np.repeat(np.array([int(b.kind) for b in blocks], np.int32), sizes)
  edge_op = np.repeat(np.array([b.op for b in blocks], np.int32), sizes)
  edge_act = np.concatenate([b.act for b in blocks]).astype(np.int32)
  edge_count = np.concatenate([np.diff(b.slot_offsets) for b in blocks]).astype(np.int32)
  kernel_size = max(int(edge_count.max(initial=0)), 1)
  K = kernel_size

  # Where each parameter scalar lives: flat -> index into weight.ravel() (edges) or
  # E*K + index into param.ravel() (nodes).
  leaf_source = np.full(n_params, -1, np.int64)
  edge_placements = []
  start = 0
  for b, n in zip(blocks, sizes):
    counts = np.diff(b.slot_offsets)
    if b.slot_values.size:
      owner = np.repeat(np.arange(n), counts)
      pos = np.arange(b.slot_values.size) - np.repeat(b.slot_offsets[:-1], counts)
      first = leaf_source[b.slot_values] < 0  # a shared scalar's slot is its first use
      leaf_source[b.slot_values[first]] = ((start + owner) * K + pos)[first]
      edge_placements.extend(_placements(arch, b, start, n, counts))
    start += n
  _check_coverage(arch, np.concatenate([np.concatenate([b.slot_values for b in blocks]),
                                       a_flat]))
  used = np.flatnonzero(node_table.ravel() < n_params)
  flat = node_table.ravel()[used]
  flat, first = np.unique(flat, return_index=True)  # first use in node order
  first = first[leaf_source[flat] < 0]
  leaf_source[node_table.ravel()[used[first]]] = len(senders) * K + used[first]
  decode_plan = _decode_plans(arch, edge_placements, leaf_source, len(senders) * K, K)
  static = Static(node_type, node_layer, node_position, node_act, node_mask, senders,
                  receivers, edge_type, edge_op, edge_act, edge_count)
  return Layout(static, node_leaves, node_gather, kernel_size, edge_placements, decode_plan,
                leaf_source)

def _placements(arch, block, start, n, counts) -> list[EdgePlacement]:
  flat = block.slot_values
  leaves = np.searchsorted(arch.leaf_offsets, flat, side='right') - 1
  if leaves.min() != leaves.max():
    raise AssertionError('internal error: one contraction reads several leaves')
  leaf = int(leaves[0])
  local = flat - arch.leaf_offsets[leaf]
  width = int(counts.max())
  shape = arch.leaf_shapes[leaf]
  if (counts == width).all() and local.size == int(np.prod(shape)):
    perm = _find_transpose(local, shape)
    if perm is not None:
      return [EdgePlacement(leaf, start, n, width, perm, None)]
  table = np.full((n, width), -1, np.int64)
  owner = np.repeat(np.arange(n), counts)
  table[owner, np.arange(flat.size) - np.repeat(block.slot_offsets[:-1], counts)] = local
  return [EdgePlacement(leaf, start, n, width, None, table)]

def _decode_plans(arch, edge_placements, leaf_source, n_weight, K) -> list:
  """Per leaf: ('transpose', placement) or ('gather', where, index)."""
  plans = []
  for leaf in range(len(arch.leaf_shapes)):
    src = leaf_source[arch.leaf_offsets[leaf]:arch.leaf_offsets[leaf + 1]]
    # a transpose plan only where that placement holds the leaf's slots (its first use)
    plan = next((p for p in edge_placements if p.perm is not None and p.leaf == leaf
                 and src.min() >= p.start * K and src.max() < (p.start + p.n) * K
                 and (src < n_weight).all()), None)
    if plan is not None:
      plans.append(('transpose', plan, None))
      continue
    if (src < n_weight).all():
      plans.append(('gather', 'weight', src))
    elif (src >= n_weight).all():
      plans.append(('gather', 'param', src - n_weight))
    else:
      plans.append(('gather', 'both', src))
  return plans

def _check_coverage(arch: Architecture, used: np.ndarray):
  """Every parameter scalar must be used (shared ones may be used more than once)."""
  unused = np.bincount(used, minlength=arch.n_params) == 0
  if unused.any():
    flat = int(np.flatnonzero(unused)[0])
    leaf = arch.leaf_of(flat)
    index = np.unravel_index(flat - arch.leaf_offsets[leaf], arch.leaf_shapes[leaf])
    raise ValueError(
        f'parameter {arch.leaf_paths[leaf]}{list(map(int, index))} is never used by the model;'
        ' every parameter must appear in the graph. Remove unused parameters from the '
        'variables (or call the model so that it uses them).')

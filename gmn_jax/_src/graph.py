"""ParameterGraph: the static template of one architecture, with `encode` and `decode`.

The template is built once per architecture on the host from an `Architecture`; `encode` and
`decode` are then pure, jittable gathers with static indices, and `encode` vmaps over a zoo.

Graph schema (one graph; every array's first axis indexes nodes or edges):

  nodes['type']       int32 [n_node]      `NodeType`: input, hidden, output, attention head
  nodes['layer']      int32 [n_node]      depth of the neuron's group (inputs are 0)
  nodes['position']   int32 [n_node]      index of an input/output neuron; -1 for hidden ones
  nodes['act']        int32 [n_node]      for output neurons, the program applied to the output
  nodes['param']      float [n_node, P]   per-neuron parameters (biases, norm scales/shifts,
                                           running statistics, position embeddings), in the order
                                           the model applies them
  nodes['param_mask'] bool  [n_node, P]   which `param` slots hold a parameter
  nodes['probe']      float [n_node, K']  optional (`encode(..., probe_inputs)`): each neuron's
                                           value on K' probe inputs
  nodes['probe_mask'] bool  [n_node, K']  which neurons have a probe value
  edges['type']       int32 [n_edge]      `EdgeType`: weight, residual, Q–K, head, ...
  edges['weight']     float [n_edge, K]   parameter values; conv kernels flattened in row-major
                                           order of their spatial axes, padded to the largest K
  edges['mask']       bool  [n_edge, K]   which `weight` entries hold a parameter
  edges['op']         int32 [n_edge]      id of the operation (dense, embedding, or conv with its
                                           kernel, stride, dilations, padding and groups); see
                                           `ParameterGraph.ops` for the text behind each id
  edges['act']        int32 [n_edge]      id of the elementwise program (activation, norm, ...)
                                           applied to the sender before this edge; see
                                           `ParameterGraph.programs`
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax._src.architecture import Architecture, NodeType
from gmn_jax._src.probe import ProbeProgram, probe_values

if TYPE_CHECKING:
  from gmn_jax._src.symmetry import Symmetry


@dataclasses.dataclass(frozen=True)
class _Static:
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
class _EdgePlacement:
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


# XLA:CPU fuses a concatenate of at most this many pieces into one loop that writes the output
# once; beyond it, every piece is materialised and then copied.
_MAX_FUSED_CONCAT = 8


class ParameterGraph:
  """The parameter graph of one architecture: static topology plus index maps.

  Made by `gmn_jax.trace` or `gmn_jax.from_params`; holds no parameter values.
  """

  def __init__(self, arch: Architecture, treedef, leaf_dtypes: list[np.dtype],
               probe_program: ProbeProgram):
    self.architecture = arch
    self.probe_program = probe_program  # the traced program, run by encode's probe_inputs
    self.treedef = treedef
    self.leaf_paths = arch.leaf_paths
    self.leaf_shapes = arch.leaf_shapes
    self.leaf_dtypes = leaf_dtypes
    self.dtype = jnp.result_type(*leaf_dtypes) if leaf_dtypes else jnp.float32
    self.programs = dict(arch.programs)  # edges['act'] / nodes['act'] id -> program text
    self.ops = dict(arch.ops)  # edges['op'] id -> operation text
    self._static = self._build(arch)
    self._symmetry_cache = None
    self.to_variables = lambda v: v  # nnx: module -> its state (set by trace)
    self._device = None
    self._features_jit = None
    self._leaves_jit = None

  # ---- construction (host) ------------------------------------------------------------------

  def _build(self, arch: Architecture) -> _Static:
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
    node_act = np.zeros(n_node, np.int32)
    node_act[output] = arch.output_act

    # Node parameters, ordered by attachment then by flat index, gathered from a compact
    # vector of the attached leaves only.
    if arch.attachments:
      a_neuron = np.concatenate([a.neurons for a in arch.attachments])
      a_flat = np.concatenate([a.flat for a in arch.attachments])
      a_event = np.concatenate([np.full(len(a.flat), i) for i, a in enumerate(arch.attachments)])
    else:
      a_neuron = a_flat = a_event = np.zeros(0, np.int64)
    self._node_leaves = sorted(set(
        (np.searchsorted(arch.leaf_offsets, np.unique(a_flat), side='right') - 1).tolist()))
    compact = np.zeros(n_params + 1, np.int64)
    offset = 0
    for leaf in self._node_leaves:
      lo, hi = arch.leaf_offsets[leaf], arch.leaf_offsets[leaf + 1]
      compact[lo:hi] = offset + np.arange(hi - lo)
      offset += hi - lo
    compact[n_params] = offset  # the sentinel: an appended zero
    node_table = _slot_table(a_neuron, a_flat, a_event * (n_params + 1) + a_flat, n_node,
                             n_params)
    self._node_gather = compact[node_table]
    node_mask = node_table < n_params

    blocks = arch.edges
    senders = np.concatenate([b.senders for b in blocks]).astype(np.int32)
    receivers = np.concatenate([b.receivers for b in blocks]).astype(np.int32)
    sizes = [len(b.senders) for b in blocks]
    edge_type = np.repeat(np.array([int(b.kind) for b in blocks], np.int32), sizes)
    edge_op = np.repeat(np.array([b.op for b in blocks], np.int32), sizes)
    edge_act = np.concatenate([b.act for b in blocks]).astype(np.int32)
    edge_count = np.concatenate([np.diff(b.slot_offsets) for b in blocks]).astype(np.int32)
    self._kernel_size = max(int(edge_count.max(initial=0)), 1)
    K = self._kernel_size

    # Where each parameter scalar lives: flat -> index into weight.ravel() (edges) or
    # E*K + index into param.ravel() (nodes).
    leaf_source = np.full(n_params, -1, np.int64)
    self._edge_placements = []
    start = 0
    for b, n in zip(blocks, sizes):
      counts = np.diff(b.slot_offsets)
      if b.slot_values.size:
        owner = np.repeat(np.arange(n), counts)
        pos = np.arange(b.slot_values.size) - np.repeat(b.slot_offsets[:-1], counts)
        leaf_source[b.slot_values] = (start + owner) * K + pos
        self._edge_placements.extend(self._placements(arch, b, start, n, counts))
      start += n
    self._check_coverage(np.concatenate([np.concatenate([b.slot_values for b in blocks]),
                                         a_flat]))
    used = node_table < n_params
    leaf_source[node_table[used]] = len(senders) * K + np.flatnonzero(used.ravel())
    self._decode_plan = self._decode_plans(arch, leaf_source, len(senders) * K)
    return _Static(node_type, node_layer, node_position, node_act, node_mask, senders,
                   receivers, edge_type, edge_op, edge_act, edge_count)

  def _placements(self, arch, block, start, n, counts) -> list[_EdgePlacement]:
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
        return [_EdgePlacement(leaf, start, n, width, perm, None)]
    table = np.full((n, width), -1, np.int64)
    owner = np.repeat(np.arange(n), counts)
    table[owner, np.arange(flat.size) - np.repeat(block.slot_offsets[:-1], counts)] = local
    return [_EdgePlacement(leaf, start, n, width, None, table)]

  def _decode_plans(self, arch, leaf_source, n_weight) -> list:
    """Per leaf: ('transpose', placement) or ('gather', where, index)."""
    by_leaf = {p.leaf: p for p in self._edge_placements if p.perm is not None}
    plans = []
    for leaf in range(len(arch.leaf_shapes)):
      if leaf in by_leaf:
        plans.append(('transpose', by_leaf[leaf], None))
        continue
      src = leaf_source[arch.leaf_offsets[leaf]:arch.leaf_offsets[leaf + 1]]
      if (src < n_weight).all():
        plans.append(('gather', 'weight', src))
      elif (src >= n_weight).all():
        plans.append(('gather', 'param', src - n_weight))
      else:
        plans.append(('gather', 'both', src))
    return plans

  def _check_coverage(self, used: np.ndarray):
    arch = self.architecture
    counts = np.bincount(used, minlength=arch.n_params)
    for problem, bad in (('is never used by the model', counts == 0),
                         ('is used more than once (shared weights are not supported)',
                          counts > 1)):
      if bad.any():
        flat = int(np.flatnonzero(bad)[0])
        leaf = arch.leaf_of(flat)
        index = np.unravel_index(flat - arch.leaf_offsets[leaf], arch.leaf_shapes[leaf])
        raise ValueError(
            f'parameter {arch.leaf_paths[leaf]}{list(map(int, index))} {problem}; every '
            'parameter must appear in the graph exactly once. Remove unused parameters from '
            'the variables (or call the model so that it uses them).')

  # ---- sizes --------------------------------------------------------------------------------

  @property
  def n_node(self) -> int:
    return len(self._static.node_type)

  @property
  def n_edge(self) -> int:
    return len(self._static.senders)

  @property
  def n_params(self) -> int:
    return self.architecture.n_params

  @property
  def kernel_size(self) -> int:
    """K, the width of `edges['weight']`."""
    return self._kernel_size

  @property
  def node_param_size(self) -> int:
    """P, the width of `nodes['param']`."""
    return self._node_gather.shape[1]

  @property
  def senders(self) -> np.ndarray:
    return self._static.senders

  @property
  def receivers(self) -> np.ndarray:
    return self._static.receivers

  @property
  def node_type(self) -> np.ndarray:
    return self._static.node_type

  @property
  def edge_type(self) -> np.ndarray:
    return self._static.edge_type

  @property
  def edge_act(self) -> np.ndarray:
    """`edges['act']`: id of the program applied to each edge's sender (`programs`)."""
    return self._static.edge_act

  @property
  def node_param_mask(self) -> np.ndarray:
    """`nodes['param_mask']`: which per-neuron parameter slots each node uses."""
    return self._static.node_mask

  # ---- encode / decode (jittable) -----------------------------------------------------------

  def _leaves(self, variables: Any) -> list[jax.Array]:
    leaves, treedef = jax.tree_util.tree_flatten(self.to_variables(variables))
    if treedef != self.treedef:
      raise ValueError(
          'variables do not have the structure this parameter graph was traced with.\n'
          f'  expected: {self.treedef}\n  got:      {treedef}\n'
          'Pass the same collections (e.g. both params and batch_stats) as to trace().')
    for leaf, path, shape in zip(leaves, self.leaf_paths, self.leaf_shapes):
      if tuple(np.shape(leaf)) != tuple(shape):
        raise ValueError(f'parameter {path} has shape {tuple(np.shape(leaf))}, but the traced '
                         f'model has {tuple(shape)}.')
    return leaves

  def encode(self, variables: Any, probe_inputs: Any = None) -> jraph.GraphsTuple:
    """The parameter graph of `variables`, as a `jraph.GraphsTuple` holding one graph.

    Jittable, and `jax.vmap(pg.encode)` converts a zoo stacked on a leading axis in one call.

    Args:
      variables: a pytree with the structure and shapes the model was traced with (for nnx,
        the module or its state).
      probe_inputs: optional K probe inputs, one array `[K, *example shape]` per array
        argument given to `trace` (a tuple if several). The graph then also holds
        `nodes['probe']` `[n_node, K]`, each neuron's value on each probe input, and
        `nodes['probe_mask']` `[n_node, K]` (see `gmn_jax._src.probe`).

    Returns:
      The graph (schema in this module's docstring).

    Raises:
      ValueError: if the structure or a shape differs from the traced model's, (outside jit)
        a parameter is not finite, or the probe inputs are not shaped `[K, *example shape]`.
    """
    leaves = self._leaves(variables)
    _check_finite(leaves, self.leaf_paths)
    if self._features_jit is None:
      self._features_jit = jax.jit(self._features)
    leaves = [jnp.asarray(l) for l in leaves]
    weight, param = self._features_jit(leaves)
    graph = self.graph_from_features(weight=weight, param=param)
    if probe_inputs is None:
      return graph
    probe = probe_values(self.probe_program, leaves, probe_inputs)
    mask = np.broadcast_to(self.probe_program.mask[:, None], probe.shape)
    return graph._replace(nodes={**graph.nodes, 'probe': probe.astype(self.dtype),
                                 'probe_mask': jnp.asarray(mask)})

  def _features(self, leaves: list[jax.Array]) -> tuple[jax.Array, jax.Array]:
    """(`edges['weight']` [E, K], `nodes['param']` [N, P]) from the parameter leaves."""
    dtype = self.dtype
    blocks = []
    for p in self._edge_placements:
      leaf = leaves[p.leaf].astype(dtype)
      if p.perm is not None:
        block = jnp.transpose(leaf, p.perm).reshape(p.n, p.width)
      else:
        block = jnp.take(leaf.ravel(), p.index, mode='fill', fill_value=0)
      blocks.append((p.start, block))
    node_flat = jnp.concatenate([jnp.ravel(leaves[i]).astype(dtype) for i in self._node_leaves]
                                + [jnp.zeros((1,), dtype)])
    return self._weight_from_blocks(blocks), node_flat[self._node_gather]

  def _weight_from_blocks(self, blocks: list[tuple[int, jax.Array]]) -> jax.Array:
    """`edges['weight']` [E, K] with each (row, [n, width] block) at rows [row, row + n) and
    columns [0, width), zero elsewhere."""
    E, K, dtype = self.n_edge, self._kernel_size, self.dtype
    segments, row = [], 0  # the blocks and the zero rows between them, in row order
    for start, block in blocks:
      if start > row:
        segments.append(jnp.zeros((start - row, K), dtype))
      segments.append(block)
      row = start + block.shape[0]
    if E > row or not segments:
      segments.append(jnp.zeros((E - row, K), dtype))
    if len(segments) <= _MAX_FUSED_CONCAT:  # one loop writes each element once
      return jnp.concatenate([jnp.pad(x, ((0, 0), (0, K - x.shape[1]))) for x in segments])
    # Too many pieces to fuse: zero the output, then write each block into it in place, rather
    # than materialising every padded block and copying them all again.
    weight = jnp.zeros((E, K), dtype)
    for start, block in blocks:
      weight = jax.lax.dynamic_update_slice(weight, block, (start, 0))
    return weight

  def graph_from_features(self, weight: jax.Array, param: jax.Array) -> jraph.GraphsTuple:
    """A graph of this template with the given `edges['weight']` [E, K] and `nodes['param']`
    [N, P] (e.g. a metanetwork's per-edge and per-node predictions)."""
    d = self._device_static()
    nodes = dict(type=d['node_type'], layer=d['node_layer'], position=d['node_position'],
                 act=d['node_act'], param=param, param_mask=d['node_mask'])
    edges = dict(type=d['edge_type'], weight=weight, mask=d['edge_mask'], op=d['edge_op'],
                 act=d['edge_act'])
    return jraph.GraphsTuple(nodes=nodes, edges=edges, senders=d['senders'],
                             receivers=d['receivers'], n_node=d['n_node'], n_edge=d['n_edge'],
                             globals=None)

  def _device_static(self) -> dict[str, jax.Array]:
    if self._device is None:
      s = self._static
      mask = np.arange(self._kernel_size)[None, :] < s.edge_count[:, None]
      self._device = {
          'node_type': s.node_type, 'node_layer': s.node_layer,
          'node_position': s.node_position, 'node_act': s.node_act, 'node_mask': s.node_mask,
          'edge_type': s.edge_type, 'edge_mask': mask, 'edge_op': s.edge_op,
          'edge_act': s.edge_act, 'senders': s.senders, 'receivers': s.receivers,
          'n_node': np.array([self.n_node], np.int32), 'n_edge': np.array([self.n_edge], np.int32)}
      self._device = {k: jnp.asarray(v) for k, v in self._device.items()}
    return self._device

  def decode(self, graph: jraph.GraphsTuple) -> Any:
    """The variables held by `graph` (`edges['weight']`, `nodes['param']`): the exact inverse
    of `encode`, bit for bit. Jittable.

    Accepts any graph of this template, e.g. one whose weights a metanetwork predicted; values
    are cast to each leaf's dtype.
    """
    weight, param = graph.edges['weight'], graph.nodes['param']
    want_w, want_p = (self.n_edge, self._kernel_size), self._node_gather.shape
    if tuple(weight.shape) != want_w or tuple(param.shape) != want_p:
      raise ValueError(
          f'graph features have shapes weight {tuple(weight.shape)}, param {tuple(param.shape)};'
          f' this template needs {want_w} and {want_p} (decode one unbatched graph).')
    if self._leaves_jit is None:
      self._leaves_jit = jax.jit(self._leaves_from_features)
    return jax.tree_util.tree_unflatten(self.treedef, self._leaves_jit(weight, param))

  def _leaves_from_features(self, weight: jax.Array, param: jax.Array) -> list[jax.Array]:
    sources = {'weight': lambda: jnp.ravel(weight), 'param': lambda: jnp.ravel(param),
               'both': lambda: jnp.concatenate([jnp.ravel(weight), jnp.ravel(param)])}
    leaves = []
    for (kind, placement, index), shape, dtype in zip(self._decode_plan, self.leaf_shapes,
                                                      self.leaf_dtypes):
      if kind == 'transpose':
        p = placement
        moved = tuple(shape[a] for a in p.perm)
        leaf = weight[p.start:p.start + p.n, :p.width].reshape(moved)
        leaf = jnp.transpose(leaf, np.argsort(p.perm))
      else:
        leaf = sources[placement]()[index].reshape(shape)
      leaves.append(leaf.astype(dtype))
    return leaves

  # ---- symmetry -----------------------------------------------------------------------------

  def random_symmetry(self, key) -> 'Symmetry':
    """A random function-preserving permutation of the hidden neurons (see `symmetry.py`).

    Args:
      key: a `jax.random` key or an integer seed.
    """
    from gmn_jax._src import symmetry  # pylint: disable=g-import-not-at-top
    if self._symmetry_cache is None:
      self._symmetry_cache = symmetry.Orbits(self)
    return self._symmetry_cache.draw(key)

  # ---- summary ------------------------------------------------------------------------------

  def summary(self) -> str:
    """A human-readable account: nodes and edges by type, parameters covered, groups."""
    from gmn_jax._src.architecture import EdgeType  # pylint: disable=g-import-not-at-top
    s = self._static
    lines = [f'ParameterGraph: {self.n_node} nodes, {self.n_edge} edges, {self.n_params} '
             f'parameters in {len(self.leaf_paths)} leaves (K={self.kernel_size}, '
             f'P={self.node_param_size})']
    lines.append('  nodes: ' + ', '.join(f'{NodeType(t).name.lower()} {c}' for t, c in
                                         zip(*np.unique(s.node_type, return_counts=True))))
    lines.append('  edges: ' + ', '.join(f'{EdgeType(t).name.lower()} {c}' for t, c in
                                         zip(*np.unique(s.edge_type, return_counts=True))))
    lines.append(f'  layers: {int(s.node_layer.max()) + 1 if self.n_node else 0}')
    arch = self.architecture
    owners: dict[int, list[str]] = {}
    for p in self._edge_placements:
      group = int(arch.group_of(s.receivers[p.start:p.start + 1])[0])
      owners.setdefault(group, []).append(self.leaf_paths[p.leaf])
    for a in arch.attachments:
      group = int(arch.group_of(a.neurons[:1])[0])
      for leaf in sorted({arch.leaf_of(int(f)) for f in np.unique(a.flat)}):
        owners.setdefault(group, []).append(self.leaf_paths[leaf])
    lines.append('  groups: [layer] kind size  module  <- parameters')
    for i, g in enumerate(arch.groups):
      params = ', '.join(dict.fromkeys(owners.get(i, [])))
      lines.append(f'    [{g.depth:2d}] {g.kind.name.lower():6s} {g.size:5d}  {g.name}'
                   + (f'  <- {params}' if params else ''))
    return '\n'.join(lines)

  def __repr__(self) -> str:
    return (f'ParameterGraph(n_node={self.n_node}, n_edge={self.n_edge}, '
            f'n_params={self.n_params})')


def _check_finite(leaves, paths):
  for leaf, path in zip(leaves, paths):
    if isinstance(leaf, jax.core.Tracer):
      continue
    if not np.isfinite(np.asarray(leaf)).all():
      raise ValueError(f'parameter {path} contains NaN or infinite values.')

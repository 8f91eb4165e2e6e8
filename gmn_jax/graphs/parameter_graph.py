"""ParameterGraph: the static template of one architecture, with `encode` and `decode`.

The template is built once per architecture on the host from an `Architecture`; `encode` and
`decode` are then pure, jittable gathers with static indices, and `encode` vmaps over a zoo.

Graph schema (one graph; every array's first axis indexes nodes or edges):

  nodes['type']       int32 [n_node]      `NodeType`: input, hidden, output, attention head,
                                           block, parameter (a scalar no neuron carries)
  nodes['layer']      int32 [n_node]      depth of the neuron's group (inputs are 0)
  nodes['position']   int32 [n_node]      index of an input/output neuron; for a hidden neuron
                                           that constants tell apart (rotary frequencies,
                                           ALiBi slopes) the rank of its constants; for a
                                           parameter node its flat index in its leaf; else -1
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

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.graphs.architecture import Architecture, NodeType
from gmn_jax.graphs.layout import build_layout
from gmn_jax.graphs.probe import ProbeProgram, probe_values

if TYPE_CHECKING:
  from gmn_jax.graphs.symmetry import Symmetry


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
    layout = build_layout(arch)
    self._static = layout.static
    self._node_leaves = layout.node_leaves
    self._node_gather = layout.node_gather
    self._kernel_size = layout.kernel_size
    self._edge_placements = layout.edge_placements
    self._decode_plan = layout.decode_plan
    self.slot_of = layout.leaf_source  # [n_params]: the one graph slot of each scalar
    self._symmetry_cache = None
    self.to_variables = lambda v: v  # nnx: module -> its state (set by trace)
    self._device = None
    self._features_jit = None
    self._leaves_jit = None

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
    Under jit or vmap a NaN or infinite parameter cannot be refused here (the values are
    traced) and enters the graph: check a zoo on the host with `gmn_jax.graphs.finite`, as the
    library's zoo readers and encoders do.

    Args:
      variables: a pytree with the structure and shapes the model was traced with (for nnx,
        the module or its state).
      probe_inputs: optional K probe inputs, one array `[K, *example shape]` per array
        argument given to `trace` (a tuple if several). The graph then also holds
        `nodes['probe']` `[n_node, K]`, each neuron's value on each probe input, and
        `nodes['probe_mask']` `[n_node, K]` (see `gmn_jax.graphs.probe`).

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
      # Concrete arrays even when first called under a trace (jit, grad, vmap): a cache of
      # tracers would leak them into every later call.
      with jax.ensure_compile_time_eval():
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
    return self._symmetry_orbits().draw(key)

  def _symmetry_orbits(self):
    """The symmetry structure (`symmetry.Orbits`), built on first use."""
    from gmn_jax.graphs import symmetry  # pylint: disable=g-import-not-at-top
    if self._symmetry_cache is None:
      self._symmetry_cache = symmetry.Orbits(self)
    return self._symmetry_cache

  # ---- summary ------------------------------------------------------------------------------

  def summary(self) -> str:
    """A human-readable account: nodes and edges by type, parameters covered, groups."""
    from gmn_jax.graphs.architecture import EdgeType  # pylint: disable=g-import-not-at-top
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
      # the nodes' own types: a group made hidden becomes output when the model returns it
      kind = '/'.join(NodeType(t).name.lower() for t in np.unique(s.node_type[g.ids]))
      lines.append(f'    [{g.depth:2d}] {kind:6s} {g.size:5d}  {g.name}'
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

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
  edges['type']       int32 [n_edge]      `EdgeType`: weight, residual, Q–K, head, ...
  edges['weight']     float [n_edge, K]   parameter values; conv kernels flattened in row-major
                                           order of their spatial axes, padded to the largest K
  edges['mask']       bool  [n_edge, K]   which `weight` entries hold a parameter
  edges['op']         int32 [n_edge, 20]  the operation: kind, groups and, per spatial axis,
                                           kernel size, stride, dilations and padding
  edges['act']        int32 [n_edge]      id of the elementwise program (activation, norm, ...)
                                           applied to the sender before this edge; see
                                           `ParameterGraph.programs`
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax._src.architecture import Architecture, NodeType


@dataclasses.dataclass(frozen=True)
class _Static:
  """Host arrays of the template (never traced)."""

  node_type: np.ndarray
  node_layer: np.ndarray
  node_position: np.ndarray
  node_act: np.ndarray
  node_gather: np.ndarray  # [N, P] flat parameter index, or n_params for an empty slot
  senders: np.ndarray
  receivers: np.ndarray
  edge_type: np.ndarray
  edge_op: np.ndarray
  edge_act: np.ndarray
  edge_gather: np.ndarray  # [E, K]
  leaf_source: np.ndarray  # [n_params] index into concat(weight.ravel(), param.ravel())


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


class ParameterGraph:
  """The parameter graph of one architecture: static topology plus index maps.

  Made by `gmn_jax.trace` or `gmn_jax.from_params`; holds no parameter values.
  """

  def __init__(self, arch: Architecture, treedef, leaf_dtypes: list[np.dtype]):
    self.architecture = arch
    self.treedef = treedef
    self.leaf_paths = arch.leaf_paths
    self.leaf_shapes = arch.leaf_shapes
    self.leaf_dtypes = leaf_dtypes
    self.dtype = jnp.result_type(*leaf_dtypes) if leaf_dtypes else jnp.float32
    self.programs = dict(arch.programs)
    self._static = self._build(arch)
    self._symmetry_cache = None
    self.to_variables = lambda v: v  # nnx: module -> its state (set by trace)

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

    # Node parameters, ordered by attachment then by flat index.
    if arch.attachments:
      a_neuron = np.concatenate([a.neurons for a in arch.attachments])
      a_flat = np.concatenate([a.flat for a in arch.attachments])
      a_event = np.concatenate([np.full(len(a.flat), i) for i, a in enumerate(arch.attachments)])
    else:
      a_neuron = a_flat = a_event = np.zeros(0, np.int64)
    node_gather = _slot_table(a_neuron, a_flat, a_event * (n_params + 1) + a_flat, n_node,
                              n_params)

    blocks = arch.edges
    senders = np.concatenate([b.senders for b in blocks]).astype(np.int32)
    receivers = np.concatenate([b.receivers for b in blocks]).astype(np.int32)
    n_edge = len(senders)
    edge_type = np.concatenate([np.full(len(b.senders), int(b.kind), np.int32) for b in blocks])
    edge_op = np.concatenate([np.broadcast_to(b.op, (len(b.senders), b.op.size))
                              for b in blocks]).astype(np.int32)
    edge_act = np.concatenate([b.act for b in blocks]).astype(np.int32)
    e_owner, e_flat, base = [], [], 0
    for b in blocks:
      counts = np.diff(b.slot_offsets)
      e_owner.append(base + np.repeat(np.arange(len(b.senders)), counts))
      e_flat.append(b.slot_values)
      base += len(b.senders)
    e_owner = np.concatenate(e_owner).astype(np.int64)
    e_flat = np.concatenate(e_flat).astype(np.int64)
    edge_gather = _slot_table(e_owner, e_flat, e_flat, n_edge, n_params)

    self._check_coverage(np.concatenate([e_flat, a_flat]))
    leaf_source = np.empty(n_params, np.int64)
    used_e = edge_gather < n_params
    leaf_source[edge_gather[used_e]] = np.flatnonzero(used_e.ravel())
    used_n = node_gather < n_params
    leaf_source[node_gather[used_n]] = edge_gather.size + np.flatnonzero(used_n.ravel())
    return _Static(node_type, node_layer, node_position, node_act, node_gather, senders,
                   receivers, edge_type, edge_op, edge_act, edge_gather, leaf_source)

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
    return self._static.edge_gather.shape[1]

  @property
  def node_param_size(self) -> int:
    """P, the width of `nodes['param']`."""
    return self._static.node_gather.shape[1]

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

  def flatten(self, variables: Any) -> jax.Array:
    """All parameter scalars in leaf order, [n_params]. Jittable."""
    leaves = self._leaves(variables)
    _check_finite(leaves, self.leaf_paths)
    if not leaves:
      return jnp.zeros((0,), self.dtype)
    return jnp.concatenate([jnp.ravel(l).astype(self.dtype) for l in leaves])

  def encode(self, variables: Any) -> jraph.GraphsTuple:
    """The parameter graph of `variables`, as a `jraph.GraphsTuple` holding one graph.

    Jittable, and `jax.vmap(pg.encode)` converts a zoo stacked on a leading axis in one call.

    Args:
      variables: a pytree with the structure and shapes the model was traced with.

    Returns:
      The graph (schema in this module's docstring).

    Raises:
      ValueError: if the structure or a shape differs from the traced model's, or (outside jit)
        a parameter is not finite.
    """
    flat = jnp.concatenate([self.flatten(variables), jnp.zeros((1,), self.dtype)])
    s = self._static
    return self.graph_from_features(
        weight=flat[s.edge_gather], param=flat[s.node_gather])

  def graph_from_features(self, weight: jax.Array, param: jax.Array) -> jraph.GraphsTuple:
    """A graph of this template with the given `edges['weight']` [E, K] and `nodes['param']`
    [N, P] (e.g. a metanetwork's per-edge and per-node predictions)."""
    s = self._static
    nodes = {
        'type': jnp.asarray(s.node_type), 'layer': jnp.asarray(s.node_layer),
        'position': jnp.asarray(s.node_position), 'act': jnp.asarray(s.node_act),
        'param': param, 'param_mask': jnp.asarray(s.node_gather < self.n_params),
    }
    edges = {
        'type': jnp.asarray(s.edge_type), 'weight': weight,
        'mask': jnp.asarray(s.edge_gather < self.n_params), 'op': jnp.asarray(s.edge_op),
        'act': jnp.asarray(s.edge_act),
    }
    return jraph.GraphsTuple(
        nodes=nodes, edges=edges, senders=jnp.asarray(s.senders),
        receivers=jnp.asarray(s.receivers), n_node=jnp.array([self.n_node], jnp.int32),
        n_edge=jnp.array([self.n_edge], jnp.int32), globals=None)

  def decode(self, graph: jraph.GraphsTuple) -> Any:
    """The variables held by `graph` (`edges['weight']`, `nodes['param']`): the exact inverse
    of `encode`, bit for bit. Jittable.

    Accepts any graph of this template, e.g. one whose weights a metanetwork predicted; values
    are cast to each leaf's dtype.
    """
    weight, param = graph.edges['weight'], graph.nodes['param']
    s = self._static
    if weight.shape[-2:] != s.edge_gather.shape or param.shape[-2:] != s.node_gather.shape:
      raise ValueError(
          f'graph features have shapes weight {weight.shape}, param {param.shape}; this template '
          f'needs {s.edge_gather.shape} and {s.node_gather.shape}.')
    flat = jnp.concatenate([jnp.ravel(weight), jnp.ravel(param)])[s.leaf_source]
    arch = self.architecture
    leaves = [flat[arch.leaf_offsets[i]:arch.leaf_offsets[i + 1]].reshape(shape).astype(dtype)
              for i, (shape, dtype) in enumerate(zip(self.leaf_shapes, self.leaf_dtypes))]
    return jax.tree_util.tree_unflatten(self.treedef, leaves)

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
    for g in self.architecture.groups:
      lines.append(f'    [{g.depth:2d}] {g.kind.name.lower():6s} {g.size:5d}  {g.name}')
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

"""Batching parameter graphs to a fixed budget, so that a training run compiles its step once.

`pg.encode` gives one graph whose `edges['weight']` is `[n_edge, K]` and `nodes['param']` is
`[n_node, P]`; K and P differ between architectures. `batch` pads K and P (with their masks) to
a common width, concatenates the graphs (`jraph.batch`) and pads nodes, edges and graphs to a
`Budget` with `jraph.pad_with_graphs`: one padding graph takes the padding nodes and edges, and
empty graphs fill up the graph count. Padding never changes the outputs for the real graphs:
metanetworks reduce per graph, and padding edges only join padding nodes.

Padding graphs are recognised by their nodes: every real parameter graph has output neurons,
while padding nodes are all zeros (type `INPUT`), so `graph_mask` works on batches padded here,
by `jraph.pad_with_graphs`, or not padded at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.graphs.architecture import NodeType


class Budget(NamedTuple):
  """Static sizes of a padded batch.

  Attributes:
    n_node: total nodes, padding included (at least one more than the real nodes).
    n_edge: total edges, padding included.
    n_graph: total graphs, padding included (at least one more than the real graphs).
    kernel_size: K, the width of `edges['weight']` and `edges['mask']`.
    param_size: P, the width of `nodes['param']` and `nodes['param_mask']`.
  """

  n_node: int
  n_edge: int
  n_graph: int
  kernel_size: int
  param_size: int


@flax.struct.dataclass
class GraphIndex:
  """Index arrays of a (batched) graph, computed once per metanetwork call. Jittable.

  A pytree whose sizes are static (auxiliary data), so that they stay Python ints inside
  `jax.lax.scan` and `nn.scan`.

  Attributes:
    senders: `[n_edge]` int32.
    receivers: `[n_edge]` int32.
    node_graph: `[n_node]` int32, the graph each node belongs to.
    edge_graph: `[n_edge]` int32, the graph each edge belongs to.
    n_graph: static number of graphs (padding included).
    n_node: static number of nodes.
    n_edge: static number of edges.
  """

  senders: jax.Array
  receivers: jax.Array
  node_graph: jax.Array
  edge_graph: jax.Array
  n_graph: int = flax.struct.field(pytree_node=False)
  n_node: int = flax.struct.field(pytree_node=False)
  n_edge: int = flax.struct.field(pytree_node=False)


def _sizes(item: Any, batch_size: int) -> list[tuple[int, int, int, int]]:
  """(n_node, n_edge, K, P) of each graph a batch may hold from `item`: every graph of a
  GraphsTuple once, a ParameterGraph (an architecture, any number of graphs) `batch_size`
  times."""
  if isinstance(item, jraph.GraphsTuple):
    n_node = np.asarray(item.n_node)
    n_edge = np.asarray(item.n_edge)
    k = int(np.shape(item.edges['weight'])[-1])
    p = int(np.shape(item.nodes['param'])[-1])
    if n_node.ndim == 2:  # a zoo stacked by jax.vmap(pg.encode): one graph per row
      n_node, n_edge = n_node.sum(axis=1), n_edge.sum(axis=1)
    return [(int(a), int(b), k, p) for a, b in zip(n_node.reshape(-1), n_edge.reshape(-1))]
  if hasattr(item, 'kernel_size') and hasattr(item, 'node_param_size'):
    return [(item.n_node, item.n_edge, item.kernel_size, item.node_param_size)] * batch_size
  raise TypeError(f'expected a ParameterGraph or a jraph.GraphsTuple, got {type(item).__name__}')


def budget_for(data: Any, batch_size: int, multiple: int = 8) -> Budget:
  """A budget that holds any `batch_size` graphs of `data`. Host-side.

  Args:
    data: a ParameterGraph (an architecture: a batch may hold `batch_size` graphs of it), a
      GraphsTuple (one graph, a batch, or a zoo stacked with `jax.vmap(pg.encode)`: each of its
      graphs counts once), or a sequence of these (e.g. the templates of a data set of several
      architectures).
    batch_size: the most real graphs a batch will hold.
    multiple: node and edge totals are rounded up to a multiple of this.

  Returns:
    `Budget(n_node, n_edge, n_graph, kernel_size, param_size)` with room for the
    `batch_size` largest graphs (by nodes and, separately, by edges) plus one padding node
    and one padding graph.
  """
  items = [data] if isinstance(data, jraph.GraphsTuple) or not isinstance(data, Sequence) \
      else list(data)
  sizes = [s for item in items for s in _sizes(item, batch_size)]
  if not sizes:
    raise ValueError('budget_for needs at least one graph or template')
  top_nodes = int(np.sort([s[0] for s in sizes])[::-1][:batch_size].sum())
  top_edges = int(np.sort([s[1] for s in sizes])[::-1][:batch_size].sum())
  round_up = lambda x: -(-x // multiple) * multiple
  return Budget(n_node=round_up(top_nodes + 1), n_edge=round_up(max(top_edges, 1)),
                n_graph=batch_size + 1, kernel_size=max(s[2] for s in sizes),
                param_size=max(s[3] for s in sizes))


def _pad_columns(a, width: int, xp):
  have = a.shape[1]
  if have == width:
    return a
  if have > width:
    raise ValueError(f'cannot pad features of width {have} to the narrower {width}')
  return xp.pad(a, ((0, 0), (0, width - have)))


def pad_features(graph: jraph.GraphsTuple, kernel_size: int,
                 param_size: int) -> jraph.GraphsTuple:
  """Pads `edges['weight'|'mask']` to K = `kernel_size` and `nodes['param'|'param_mask']` to
  P = `param_size` columns, with zeros (values) and False (masks). Jittable.

  Args:
    graph: a parameter graph (or batch) with K <= `kernel_size` and P <= `param_size`.
    kernel_size: the new K.
    param_size: the new P.

  Returns:
    The graph with wider features; everything else unchanged.
  """
  xp = np if isinstance(graph.edges['weight'], np.ndarray) else jnp
  edges = dict(graph.edges)
  nodes = dict(graph.nodes)
  for key in ('weight', 'mask'):
    edges[key] = _pad_columns(edges[key], kernel_size, xp)
  for key in ('param', 'param_mask'):
    nodes[key] = _pad_columns(nodes[key], param_size, xp)
  return graph._replace(nodes=nodes, edges=edges)


def batch(graphs: Sequence[jraph.GraphsTuple], budget: Budget | None = None) -> jraph.GraphsTuple:
  """Batches parameter graphs of one or several architectures, padded to a budget. Host-side.

  This function does not support `jax.jit`: the shape of its output is data-dependent
  (fixed by `budget` when one is given, which is what makes the train step compile once).

  Args:
    graphs: graphs from `pg.encode` (or batches of them), of any architectures.
    budget: the padded sizes (see `budget_for`). None: pad K and P to the widest graph and
      add one padding node and one padding graph only.

  Returns:
    One `jraph.GraphsTuple` of numpy arrays: the real graphs first, in order, then a padding
    graph holding the padding nodes and edges, then empty graphs. `n_node`, `n_edge` are
    `[budget.n_graph]`.

  Raises:
    ValueError: if the graphs do not fit in the budget; the message says which size to raise.
  """
  graphs = [jax.device_get(g) for g in graphs]
  if not graphs:
    raise ValueError('batch needs at least one graph')
  fields = {(tuple(sorted(g.nodes)), tuple(sorted(g.edges))) for g in graphs}
  if len(fields) > 1:
    raise ValueError(f'graphs with different fields cannot be batched: {sorted(fields)}. Encode '
                     'them alike (e.g. all with or all without probe_inputs).')
  k = max(g.edges['weight'].shape[1] for g in graphs)
  p = max(g.nodes['param'].shape[1] for g in graphs)
  n_graph = sum(np.shape(g.n_node)[0] for g in graphs)
  n_node = sum(int(np.sum(g.n_node)) for g in graphs)
  n_edge = sum(int(np.sum(g.n_edge)) for g in graphs)
  if budget is None:
    budget = Budget(n_node + 1, n_edge, n_graph + 1, k, p)
  for name, have, room in (('kernel_size', k, budget.kernel_size),
                           ('param_size', p, budget.param_size),
                           ('n_node', n_node + 1, budget.n_node),
                           ('n_edge', n_edge, budget.n_edge),
                           ('n_graph', n_graph + 1, budget.n_graph)):
    if have > room:
      raise ValueError(f'the batch needs {name} >= {have} (one padding node and graph '
                       f'included) but the budget has {room}; build the budget with '
                       'budget_for over the whole data set and the largest batch size.')
  graphs = [pad_features(g, budget.kernel_size, budget.param_size) for g in graphs]
  graphs = [g._replace(n_node=np.asarray(g.n_node, np.int32).reshape(-1),
                       n_edge=np.asarray(g.n_edge, np.int32).reshape(-1),
                       senders=np.asarray(g.senders, np.int32),
                       receivers=np.asarray(g.receivers, np.int32)) for g in graphs]
  joined = jraph.batch_np(graphs) if len(graphs) > 1 else graphs[0]
  return jraph.pad_with_graphs(joined, budget.n_node, budget.n_edge, budget.n_graph)


def graph_index(graphs: jraph.GraphsTuple) -> GraphIndex:
  """Per-node and per-edge graph ids of a batch. Jittable; sizes come from array shapes."""
  n_graph = graphs.n_node.shape[0]
  n_node = jax.tree_util.tree_leaves(graphs.nodes)[0].shape[0]
  n_edge = graphs.senders.shape[0]
  return GraphIndex(jnp.asarray(graphs.senders, jnp.int32),
                    jnp.asarray(graphs.receivers, jnp.int32), _owners(graphs.n_node, n_node),
                    _owners(graphs.n_edge, n_edge), n_graph, n_node, n_edge)


def _owners(counts: jax.Array, total: int) -> jax.Array:
  """`[total]` int32: the graph of each position, graph g owning `counts[g]` consecutive ones
  (`jnp.repeat(arange(n_graph), counts, total_repeat_length=total)`). Jittable.

  A binary search of each position in the running counts: position-wise, with no prefix sum
  over `total`, so an edge axis split over devices stays split (a sharded `jnp.repeat` makes
  XLA partition its prefix sum as a reduce-window whose cost grows with `total` squared).
  """
  ends = jnp.cumsum(jnp.asarray(counts, jnp.int32))
  ids = jnp.searchsorted(ends, jnp.arange(total, dtype=jnp.int32), side='right')
  return jnp.minimum(ids, counts.shape[0] - 1).astype(jnp.int32)


def graph_mask(graphs: jraph.GraphsTuple) -> jax.Array:
  """`[n_graph]` bool, True for real parameter graphs and False for padding graphs. Jittable.

  A real parameter graph has at least one node that is not an input neuron; padding graphs
  (from `batch` or `jraph.pad_with_graphs`) have only zero-filled nodes or none. Works on
  unpadded batches too (all True).
  """
  index = graph_index(graphs)
  real = (jnp.asarray(graphs.nodes['type']) != int(NodeType.INPUT)).astype(jnp.int32)
  return jax.ops.segment_max(real, index.node_graph, index.n_graph) > 0


def _crop_width(mask: np.ndarray) -> int:
  used = np.flatnonzero(mask.any(axis=0)) if mask.size else np.zeros(0, int)
  return max(int(used[-1]) + 1 if used.size else 1, 1)


def unbatch(graphs: jraph.GraphsTuple) -> list[jraph.GraphsTuple]:
  """Splits a batch (e.g. a metanetwork's output) into its real graphs. Host-side.

  Padding graphs are dropped, and each graph's `edges['weight'|'mask']` and
  `nodes['param'|'param_mask']` are cropped to the graph's own K and P (the last column any
  mask uses), so that `pg.decode(unbatch(out)[i])` works for a batch of several
  architectures. `globals`, if any, become `[1, ...]` per graph.

  Args:
    graphs: a batched GraphsTuple (from `batch`, `jraph.batch`, or a metanetwork).

  Returns:
    A list of single-graph GraphsTuples of numpy arrays.
  """
  graphs = jax.tree_util.tree_map(np.array, jax.device_get(graphs))  # writable copies
  keep = np.asarray(graph_mask(graphs))
  out = []
  for i, g in enumerate(jraph.unbatch_np(graphs)):
    if not keep[i]:
      continue
    k = _crop_width(np.asarray(g.edges['mask']))
    p = _crop_width(np.asarray(g.nodes['param_mask']))
    edges = {key: (v[:, :k] if key in ('weight', 'mask') else v) for key, v in g.edges.items()}
    nodes = {key: (v[:, :p] if key in ('param', 'param_mask') else v)
             for key, v in g.nodes.items()}
    out.append(g._replace(nodes=nodes, edges=edges))
  return out

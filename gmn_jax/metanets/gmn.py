"""GMN: the graph metanetwork of Lim, Maron, Law, Lorraine and Lucas (ICLR 2024).

A message-passing network on the parameter graph that updates edges, nodes and, optionally,
per-graph globals (the paper's Eqs. for the edge, node and global updates):

    e_ij <- e_ij + MLP_e(v_i, v_j, e_ij, u)
    v_i  <- v_i  + MLP_2(v_i, AGG_j MLP_1(v_i, v_j, e_ij, dir_ij, u), u)
    u    <- u    + MLP_u(mean_i v_i, mean_ij e_ij, u)

as residual pre-norm blocks (LayerNorm on each input). Messages flow along each edge and, with
`bidirectional=True`, also against it; the direction is a feature of the message (its own
bias and its own neighbour projection), so the graph stays a DAG to the network while
information reaches every neuron. All three updates of a layer read the layer's input
(they are simultaneous).

Where it departs from the paper: MLP_1 is a single Dense + activation; its output layer is
folded into MLP_2's first layer, which is exact for sum and mean aggregation and saves one
`[2 n_edge, d] x [d, d]` matmul per layer. The first layers of the MLPs are computed as
per-node projections gathered to the edges, not as a Dense over concatenated gathers (the
same function, fewer FLOPs), and edge-sized arrays are never concatenated or sliced by
columns (on CPU, memory traffic, not FLOPs, bounds these networks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from gmn_jax.metanets import aggregation as agg_ops
from gmn_jax.metanets import edge_chunks
from gmn_jax.metanets.batching import GraphIndex, graph_index
from gmn_jax.metanets.layer_statistics import standardize
from gmn_jax.metanets.metanetwork import Metanetwork


class GMNLayer(nn.Module):
  """One GMN block: edge, node and (optional) global updates. See the module docstring."""

  node_dim: int
  edge_dim: int
  hidden_dim: int
  aggregators: tuple[str, ...]
  scalers: tuple[str, ...]
  avg_log_degree: float
  bidirectional: bool
  update_edges: bool
  activation: Callable
  edge_chunk: int = 0
  edge_shards: int = 1

  @nn.compact
  def __call__(self, carry: tuple[jax.Array, jax.Array, jax.Array | None],
               index: GraphIndex) -> tuple[tuple[jax.Array, jax.Array, jax.Array | None], None]:
    v, e, u = carry
    act, h = self.activation, self.hidden_dim
    take = agg_ops.gather
    dense = lambda width, name: nn.Dense(width, name=name)
    vn = nn.LayerNorm(name='node_norm')(v)
    un = nn.LayerNorm(name='global_norm')(u) if u is not None else None

    if self.edge_chunk:
      agg, e, pooled_e = self._edge_blocks(e, vn, un, index)
    else:
      agg, e, en = self._edges(e, vn, un, index)
      pooled_e = None if u is None else agg_ops.segment_mean(en, index.edge_graph,
                                                             index.n_graph)

    node_in = dense(h, 'node_self')(vn) + dense(h, 'node_agg')(agg)
    if un is not None:
      node_in = node_in + take(dense(h, 'node_global')(un), index.node_graph)
    v_new = v + dense(self.node_dim, 'node_out')(act(node_in))

    if u is not None:
      pooled_v = agg_ops.segment_mean(vn, index.node_graph, index.n_graph)
      hidden_u = act(dense(h, 'global_in')(jnp.concatenate([pooled_v, pooled_e, un], -1)))
      u = u + dense(u.shape[-1], 'global_out')(hidden_u)
    return (v_new, e, u), None

  def _edge_inputs(self, vn, un, index):
    """MLP_1's and the edge MLP's first layers on the node and global inputs, per node (and
    per graph): they are gathered to the edges. Along an edge s -> r the message goes to r
    (i = r, j = s); against it, to s."""
    h, he = self.hidden_dim, self.edge_dim
    dense = lambda width, name: nn.Dense(width, name=name)
    n_dir = 2 if self.bidirectional else 1
    terms = {'direction_bias': self.param('direction_bias', nn.initializers.zeros, (n_dir, h)),
             'forward_self': dense(h, 'forward_self')(vn),
             'forward_neighbour': dense(h, 'forward_neighbour')(vn)}
    if self.bidirectional:
      terms['backward_self'] = dense(h, 'backward_self')(vn)
      terms['backward_neighbour'] = dense(h, 'backward_neighbour')(vn)
    if self.update_edges:
      terms['edge_sender'] = dense(he, 'edge_sender')(vn)
      terms['edge_receiver'] = dense(he, 'edge_receiver')(vn)
    if un is not None:
      terms['message_global'] = dense(h, 'message_global')(un)
      if self.update_edges:
        terms['edge_global'] = dense(he, 'edge_global')(un)
    return terms

  def _edge_messages(self, t, msg_edge, s, r, g):
    """`[(messages, receivers)]` along (and against) the edges `s -> r` of graphs `g`."""
    take = agg_ops.gather
    if 'message_global' in t:
      msg_edge = msg_edge + take(t['message_global'], g)
    bias = t['direction_bias']
    forward = self.activation(msg_edge + bias[0] + take(t['forward_self'], r)
                              + take(t['forward_neighbour'], s))
    parts = [(forward, r)]
    if self.bidirectional:
      backward = self.activation(msg_edge + bias[1] + take(t['backward_self'], s)
                                 + take(t['backward_neighbour'], r))
      parts.append((backward, s))
    return parts

  def _edge_update(self, t, e, hidden_e, s, r, g, edge_out):
    """`e + MLP_e(v_i, v_j, e_ij, u)`, given the edge MLP's first layer on `e_ij`."""
    take = agg_ops.gather
    hidden_e = hidden_e + take(t['edge_sender'], s) + take(t['edge_receiver'], r)
    if 'edge_global' in t:
      hidden_e = hidden_e + take(t['edge_global'], g)
    return e + edge_out(self.activation(hidden_e))

  def _edges(self, e, vn, un, index):
    """The edge pass on all edges at once: (aggregated messages, new e, normalised e)."""
    t = self._edge_inputs(vn, un, index)
    s, r, g = index.senders, index.receivers, index.edge_graph
    en = nn.LayerNorm(name='edge_norm')(e)
    msg_edge = nn.Dense(self.hidden_dim, name='message_edge')(en)
    parts = self._edge_messages(t, msg_edge, s, r, g)
    agg = agg_ops.aggregate_parts(parts, index.n_node, self.aggregators, self.scalers,
                                  self.avg_log_degree)
    if self.update_edges:
      hidden_e = nn.Dense(self.edge_dim, name='edge_hidden')(en)
      e = self._edge_update(t, e, hidden_e, s, r, g,
                            nn.Dense(self.edge_dim, name='edge_out'))
    return agg, e, en

  def _edge_blocks(self, stream: edge_chunks.EdgeStream, vn, un, index):
    """The edge pass in blocks of `edge_chunk` edges, from and to an `EdgeStream` (see
    `gmn_jax.metanets.edge_chunks`): (aggregated messages, the stream of the new edge
    vectors, per-graph mean of the normalised edge vectors or None). The same parameters
    and, up to the order of float sums, the same values as `_edges`."""
    t = self._edge_inputs(vn, un, index)
    n, n_graph, he = index.n_node, index.n_graph, self.edge_dim
    # The edge-wise layers, created under their usual names (on zero rows) and applied as pure
    # functions inside the scans.
    none = jnp.zeros((0, he), vn.dtype)
    nn.LayerNorm(name='edge_norm')(none)
    nn.Dense(self.hidden_dim, name='message_edge')(none)
    if self.update_edges:
      nn.Dense(he, name='edge_hidden')(none)
      nn.Dense(he, name='edge_out')(none)
    context = {'t': t, 'p': self.variables['params']}
    apply = lambda p, module, name, x: module.apply({'params': p[name]}, x)
    dense_h, dense_e = nn.Dense(self.hidden_dim, parent=None), nn.Dense(he, parent=None)
    norm = lambda p, e: apply(p, nn.LayerNorm(parent=None), 'edge_norm', e)

    def body(c, carry, block):
      total, pooled = carry
      t, p = c['layer']['t'], c['layer']['p']
      en = norm(p, stream.vectors(c['stream'], block))
      s, r, g = block.senders, block.receivers, block.graph
      for values, ids in self._edge_messages(t, apply(p, dense_h, 'message_edge', en), s, r, g):
        total = total + jax.ops.segment_sum(values, ids, n)
      if pooled is not None:
        pooled = pooled + jax.ops.segment_sum(en, g, n_graph)
      return (total, pooled), None

    init = (jnp.zeros((n, self.hidden_dim), vn.dtype),
            None if un is None else jnp.zeros((n_graph, he), vn.dtype))
    (total, pooled), _ = edge_chunks.scan_edge_blocks(
        body, {'layer': context, 'stream': stream.context}, init, stream.blocks,
        self.edge_chunk, self.edge_shards)
    count = agg_ops.segment_count(index.receivers, n, vn.dtype)
    if self.bidirectional:
      count = count + agg_ops.segment_count(index.senders, n, vn.dtype)
    agg = agg_ops.aggregate_totals(total, count, self.aggregators, self.scalers,
                                   self.avg_log_degree)
    if pooled is not None:
      edges_per_graph = agg_ops.segment_count(index.edge_graph, n_graph, vn.dtype)
      pooled = pooled / jnp.maximum(edges_per_graph, 1)[:, None]
    if self.update_edges:
      stream = stream.then(lambda c, block, e: self._edge_update(
          c['t'], e, apply(c['p'], dense_e, 'edge_hidden', norm(c['p'], e)), block.senders,
          block.receivers, block.graph, lambda x: apply(c['p'], dense_e, 'edge_out', x)),
          context)
    return agg, stream, pooled


def stack_layers(layer: type[nn.Module], num_layers: int, carry: Any, index: GraphIndex,
                scan: bool = False, remat: bool = False, **fields) -> Any:
  """Applies `num_layers` blocks of `layer`, each with its own parameters.

  `layer(**fields)` maps `(carry, index)` to `(carry, None)`. With `scan=True` the blocks run
  under `nn.scan`: XLA compiles one block whatever the depth (parameters stacked on a leading
  axis under the name `layers`), but on CPU the step runs slower, since every saved
  activation is copied into a stacked buffer for the backward pass. Otherwise the loop is
  unrolled (`layer_0`, `layer_1`, ...). With `remat=True` each block is rematerialised
  (`nn.remat`): the backward pass keeps only the blocks' inputs and recomputes the rest, so
  memory grows with one block's activations instead of all of them (same parameters, same
  names, same values; about one more forward pass of compute).
  """
  if num_layers == 0:
    return carry
  if remat:
    layer = nn.remat(layer)
  if not scan:
    for i in range(num_layers):
      carry, _ = layer(name=f'layer_{i}', **fields)(carry, index)
    return carry
  stack = nn.scan(layer, variable_axes={'params': 0}, split_rngs={'params': True},
                  in_axes=nn.broadcast, length=num_layers)
  carry, _ = stack(name='layers', **fields)(carry, index)
  return carry


class GMN(Metanetwork):
  """Graph metanetwork (Lim et al. 2024): `jraph.GraphsTuple -> jraph.GraphsTuple`.

  Input: a (batched, optionally padded) parameter graph from `pg.encode`, `jraph.batch` or
  `gmn_jax.batch`. Output: the same graph with `globals` `[n_graph, out_features]` (invariant
  per-graph predictions) and per-parameter predictions in `edges['weight']` `[n_edge, K]` and
  `nodes['param']` `[n_node, P]` (equivariant; `pg.decode` of one graph of it is a parameter
  pytree). See `Readout`.

  Attributes:
    node_dim: node vector width.
    edge_dim: edge vector width.
    hidden_dim: message and MLP hidden width (None: `node_dim`).
    num_layers: message-passing blocks.
    aggregation: `'sum'`, `'mean'`, `'max'`, `'min'`, `'std'`, a tuple of these, or `'pna'`
      (mean, min, max, std with identity and amplification degree scalers).
    avg_log_degree: the PNA degree normaliser (see `gmn_jax.mean_log_degree`).
    bidirectional: also pass messages against the edge direction (direction is a feature).
    update_edges: update edge vectors in every block.
    use_globals: keep and update a per-graph vector `u` (the global update).
    global_dim: width of `u`.
    scan_layers: run the blocks under `nn.scan` (compiles faster for deep stacks, runs
      slower on CPU; see `stack_layers`).
    remat_layers: rematerialise each block in the backward pass (less memory for graphs of
      millions of edges; see `stack_layers` and `gmn_jax.metanets.sharded`). No effect with
      `edge_chunk`, which recomputes all edge-wise work anyway.
    edge_chunk: 0 (the default: all edges at once), or stream the edges in blocks of this
      many, for graphs too large to hold their edge vectors (tens of millions of edges):
      no `[n_edge, d]` array is kept between layers or for the backward pass, only the
      input edge arrays and per-node states; each layer recomputes, block by block, the
      input encoding and the earlier layers' edge updates of its edges (a rematerialised
      `lax.scan`, `gmn_jax.metanets.edge_chunks`), so layer l costs about l + 1 edge
      passes. Aggregation `'sum'` or `'mean'`; `scan_layers=False`; the batch's `n_edge` a
      multiple of `edge_chunk * edge_shards` (`edge_chunks.round_edges`). Same parameters,
      same outputs up to float rounding.
    edge_shards: with `edge_chunk`, the mesh's `'data'` size when the edges are sharded
      (`gmn_jax.metanets.sharded.shard_edges`; call the model under `jax.set_mesh(mesh)`):
      each device scans its own edges and the devices meet once per edge pass.
    The readout, activation and value-encoding settings: see `Metanetwork`.
  """

  node_dim: int = 64
  edge_dim: int = 64
  hidden_dim: int | None = None
  num_layers: int = 4
  aggregation: str | Sequence[str] = 'mean'
  avg_log_degree: float = 1.0
  bidirectional: bool = True
  update_edges: bool = True
  use_globals: bool = False
  global_dim: int = 64
  scan_layers: bool = False
  remat_layers: bool = False
  edge_chunk: int = 0
  edge_shards: int = 1

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    index = graph_index(graphs)
    aggregators, scalers = agg_ops.resolve_aggregation(self.aggregation)
    if self.edge_chunk:
      v, e = self._encode_stream(graphs, index)
    else:
      v, e = self.encode(graphs, index, self.node_dim, self.edge_dim)
    u = jnp.zeros((index.n_graph, self.global_dim), v.dtype) if self.use_globals else None
    v, e, u = stack_layers(
        GMNLayer, self.num_layers, (v, e, u), index, node_dim=self.node_dim,
        edge_dim=self.edge_dim, hidden_dim=self.hidden_dim or self.node_dim,
        aggregators=aggregators, scalers=scalers, avg_log_degree=self.avg_log_degree,
        bidirectional=self.bidirectional, update_edges=self.update_edges,
        activation=self.activation, edge_chunk=self.edge_chunk, edge_shards=self.edge_shards,
        scan=self.scan_layers, remat=self.remat_layers and not self.edge_chunk)
    v = nn.LayerNorm(name='final_node_norm')(v)
    pooled_e = None
    if self.edge_chunk:
      e, pooled_e = self._final_edges(e, index)
    else:
      e = nn.LayerNorm(name='final_edge_norm')(e)
    if u is not None:
      u = nn.LayerNorm(name='final_global_norm')(u)
    return self.readout(graphs, index, v, e, u, pooled_e)

  def _encode_stream(self, graphs: jraph.GraphsTuple,
                     index: GraphIndex) -> tuple[jax.Array, edge_chunks.EdgeStream]:
    """The input encoding with `edge_chunk`: the node vectors, and the edge vectors as an
    `EdgeStream` (the encoder applied to each block's edges when a layer reads them)."""
    if self.scan_layers:
      raise ValueError('edge_chunk and scan_layers cannot be combined: the edge blocks pass '
                       'each layer a function, which nn.scan cannot carry; unroll the '
                       'layers (scan_layers=False)')
    encoder = self.encoder(self.node_dim, self.edge_dim, normalize_weights=False,
                           layer_statistics=None)
    # Per-graph statistics need every edge: standardised once, here, not per block.
    graphs = standardize(graphs, self.normalize_weights, self.layer_statistics,
                         encoder.max_layers)
    whole = edge_chunks.edge_inputs(graphs, index)
    v, _ = encoder(*edge_chunks.restrict(graphs, index, jax.tree.map(lambda x: x[:0], whole)))
    pure = encoder.clone(parent=None)
    # The encoder's parameters and the node- and graph-indexed inputs; the edge-indexed ones
    # come with each block.
    context = {'params': {'params': self.variables['params']['encoder']},
               'graphs': graphs._replace(edges=None, senders=None, receivers=None),
               'index': index.replace(senders=None, receivers=None, edge_graph=None)}
    return v, edge_chunks.EdgeStream(whole, lambda c, block: pure.apply(
        c['params'], *edge_chunks.restrict(c['graphs'], c['index'], block))[1], context)

  def _final_edges(self, stream: edge_chunks.EdgeStream,
                   index: GraphIndex) -> tuple[jax.Array, jax.Array]:
    """With `edge_chunk`: the final normalised edge vectors `[n_edge, edge_dim]` (for the
    per-parameter readout; not kept for the backward pass when only the graph outputs are
    differentiated) and their per-graph means `[n_graph, edge_dim]`, block by block."""
    norm = nn.LayerNorm(name='final_edge_norm')
    norm(jnp.zeros((0, self.edge_dim)))
    pure = norm.clone(parent=None)

    def body(c, pooled, block):
      en = pure.apply(c['params'], stream.vectors(c['stream'], block))
      return pooled + jax.ops.segment_sum(en, block.graph, index.n_graph), en

    context = {'params': {'params': self.variables['params']['final_edge_norm']},
               'stream': stream.context}
    init = jnp.zeros((index.n_graph, self.edge_dim))
    pooled, e = edge_chunks.scan_edge_blocks(body, context, init, stream.blocks,
                                             self.edge_chunk, self.edge_shards)
    count = agg_ops.segment_count(index.edge_graph, index.n_graph, pooled.dtype)
    return e, pooled / jnp.maximum(count, 1)[:, None]

"""Message passing over the edges in fixed-size blocks, for graphs of tens of millions of edges.

A metanetwork layer keeps several `[n_edge, d]` arrays alive at once (messages in both
directions, the edge MLP's hidden layer), and autodiff keeps them all for the backward pass.
`scan_edge_blocks` runs a per-edge computation under `jax.lax.scan` over blocks of `chunk`
edges, each block under `jax.checkpoint`: the forward pass holds one block's temporaries at a
time (the per-node results are summed into a small carry, e.g. with `segment_sum`), and the
backward pass recomputes each block from its inputs instead of storing every edge's
activations. The result equals the unblocked computation up to the order of float additions.

An `EdgeStream` goes further: it holds no edge vectors at all, only the graph's input edge
arrays and a function that computes a block's edge vectors from that block's inputs (the
input encoding, then each earlier layer's edge update, which reads per-node arrays only).
A network whose edge state is a per-edge function of its inputs and of per-node states (GMN)
then keeps O(nodes) memory between layers, at the price of recomputing the earlier layers'
edge updates in each later layer.

Every array a block's computation reads besides the block itself (parameters, per-node
states) is passed explicitly as a `context` pytree, never closed over: that is what lets the
scan run per device. With the edge sharding of `gmn_jax.metanets.sharded` and `shards` equal to
the `'data'` size of the mesh set with `jax.set_mesh`, each device scans its own contiguous
edge range under `jax.shard_map`, and the devices meet once per scan, not once per block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jraph
from jax.sharding import PartitionSpec as P

from gmn_jax import mesh as mesh_lib

from gmn_jax.metanets.batching import Budget, GraphIndex


class EdgeBlock(NamedTuple):
  """A graph's edge-indexed input arrays, whole (`[n_edge, ...]`) or one block's rows.

  Attributes:
    edges: the GraphsTuple's `edges` dict.
    senders: `[rows]` int32.
    receivers: `[rows]` int32.
    graph: `[rows]` int32, the graph each edge belongs to.
  """

  edges: Any
  senders: jax.Array
  receivers: jax.Array
  graph: jax.Array


@dataclasses.dataclass(frozen=True)
class EdgeStream:
  """Edge vectors never stored: `vectors(context, block)` computes `[rows, d]` for a block of
  `blocks`.

  Attributes:
    blocks: the whole graph's edge inputs (an `EdgeBlock` of `[n_edge, ...]` arrays).
    vectors: pure function of (`context`, an `EdgeBlock` of rows) to their edge vectors; it
      closes over no array.
    context: a pytree of every array `vectors` reads besides the block (parameters, per-node
      and per-graph arrays; nothing edge-indexed).
  """

  blocks: EdgeBlock
  vectors: Callable[[Any, EdgeBlock], jax.Array]
  context: Any

  def then(self, update: Callable[[Any, EdgeBlock, jax.Array], jax.Array],
           context: Any) -> 'EdgeStream':
    """The stream of `update(context, block, vectors(block))` (`update` closes over no
    array; what it reads is in `context`)."""
    vectors = self.vectors
    return EdgeStream(self.blocks, lambda c, block: update(c[1], block, vectors(c[0], block)),
                      (self.context, context))


def edge_inputs(graphs: jraph.GraphsTuple, index: GraphIndex) -> EdgeBlock:
  """The whole graph's `EdgeBlock`."""
  return EdgeBlock(graphs.edges, index.senders, index.receivers, index.edge_graph)


def restrict(graphs: jraph.GraphsTuple, index: GraphIndex,
             block: EdgeBlock) -> tuple[jraph.GraphsTuple, GraphIndex]:
  """`graphs` and `index` with only `block`'s edges (the nodes and graphs unchanged), for a
  module that reads edges row by row (e.g. an input encoder)."""
  rows = block.senders.shape[0]
  return (graphs._replace(edges=block.edges, senders=block.senders, receivers=block.receivers),
          index.replace(senders=block.senders, receivers=block.receivers,
                        edge_graph=block.graph, n_edge=rows))


def check_blocks(n_edge: int, chunk: int, shards: int = 1) -> int:
  """The number of scan steps for `n_edge` edges in blocks of `chunk` per shard.

  Raises:
    ValueError: if `chunk` or `shards` is not positive, or `chunk * shards` does not divide
      `n_edge` (the message says how to pad the budget).
  """
  if chunk <= 0 or shards <= 0:
    raise ValueError(f'edge chunk ({chunk}) and shards ({shards}) must be positive')
  step = chunk * shards
  if n_edge % step:
    raise ValueError(f'{n_edge} edges cannot be cut into blocks of {chunk} edges on {shards} '
                     f'shard(s); pad the batch with gmn_jax.metanets.edge_chunks.'
                     f'round_edges(budget, {step})')
  return n_edge // step


def round_edges(budget: Budget, multiple: int) -> Budget:
  """`budget` with `n_edge` rounded up to a multiple of `multiple` (e.g. `chunk * shards`)."""
  return budget._replace(n_edge=-(-budget.n_edge // multiple) * multiple)


def _scan(body, context, init, edge_arrays, chunk: int):
  """`scan_edge_blocks` on the edges at hand (one device's)."""
  n_edge = jax.tree.leaves(edge_arrays)[0].shape[0]
  blocks = check_blocks(n_edge, chunk)
  xs = jax.tree.map(lambda x: x.reshape((blocks, chunk) + x.shape[1:]), edge_arrays)
  step = jax.checkpoint(lambda carry, block: body(context, carry, block))
  carry, ys = jax.lax.scan(step, init, xs)
  return carry, jax.tree.map(lambda y: y.reshape((n_edge,) + y.shape[2:]), ys)


def _data_mesh(shards: int) -> jax.sharding.AbstractMesh:
  """The mesh set with `jax.set_mesh`, checked to have a `'data'` axis of `shards` devices."""
  mesh = jax.sharding.get_abstract_mesh()
  size = None if mesh.empty else dict(mesh.shape).get(mesh_lib.DATA_AXIS)
  if size != shards:
    raise ValueError(f'edge_shards={shards} streams edges split over a {mesh_lib.DATA_AXIS!r} '
                     f'mesh axis of {shards} devices, but the mesh set is '
                     f'{None if mesh.empty else dict(mesh.shape)}; call the model under '
                     f'`with jax.set_mesh(gmn_jax.make_mesh(data={shards})):` on edges placed '
                     'with gmn_jax.shard_edges.')
  return mesh


def scan_edge_blocks(body: Callable[[Any, Any, Any], tuple[Any, Any]], context: Any,
                     init: Any, edge_arrays: Any, chunk: int,
                     shards: int = 1) -> tuple[Any, Any]:
  """Runs `body` over blocks of the edge axis, rematerialised; reassembles its edge outputs.

  With `shards > 1` the edge axis is split over the `'data'` axis of the mesh set with
  `jax.set_mesh` (`shards` devices, contiguous edge ranges, as `gmn_jax.shard_edges` places
  them): under `jax.shard_map` each device scans its own edges with a carry of its own, and
  the carries are summed across the devices once, after the scan; in the backward pass each
  device accumulates the gradient of `context` over its own blocks, summed across the devices
  once at the end. No collective runs inside the scan and no edge array is gathered. Jittable.

  Args:
    body: `(context, carry, block) -> (carry, out)`, pure and closing over no array (no Flax
      modules: apply parameters with `Module.apply`), where `block` is `edge_arrays` with each
      leaf `[chunk, ...]` and `out` a pytree of `[chunk, ...]` arrays (or None). The carry is
      a sum over edges: `body` only adds each block's contribution to it (e.g. with
      `segment_sum`), so that the devices' carries add up to the whole graph's.
    context: a pytree of the arrays `body` reads besides the block (parameters, per-node
      arrays; replicated on every device, nothing edge-indexed).
    init: the initial carry (small: per node or per graph).
    edge_arrays: a pytree of `[n_edge, ...]` arrays.
    chunk: edges per block (on each device).
    shards: 1 (the edges at hand), or the size of the mesh's `'data'` axis that the edges are
      split over.

  Returns:
    `(carry, outputs)`, each output leaf `[n_edge, ...]` in the order of the edges (split over
    `'data'` like the edges when `shards > 1`).

  Raises:
    ValueError: see `check_blocks`; and with `shards > 1`, if no mesh with a `'data'` axis of
      that size is set.
  """
  n_edge = jax.tree.leaves(edge_arrays)[0].shape[0]
  check_blocks(n_edge, chunk, shards)
  if shards == 1:
    return _scan(body, context, init, edge_arrays, chunk)
  data = P(mesh_lib.DATA_AXIS)

  def local(context, edge_arrays):
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), init)
    carry, out = _scan(body, context, zeros, edge_arrays, chunk)
    return jax.lax.psum(carry, mesh_lib.DATA_AXIS), out

  # check_vma=False: the context is replicated and each device's copy only meets its own
  # edges; shard_map sums the context's cotangents over 'data' at its boundary.
  total, out = jax.shard_map(local, mesh=_data_mesh(shards), in_specs=(P(), data),
                             out_specs=(P(), data), check_vma=False)(context, edge_arrays)
  return jax.tree.map(jnp.add, init, total), out

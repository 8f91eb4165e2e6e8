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

It composes with the edge sharding of `gmn_jax.metanets.sharded`: with `shards` equal to the
mesh's `'data'` size, each step of the scan takes `chunk` edges from each of the `shards`
contiguous edge ranges, so every device works on its own edges in every step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jraph

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
  """Edge vectors never stored: `vectors(block)` computes `[rows, d]` for a block of `blocks`.

  Attributes:
    blocks: the whole graph's edge inputs (an `EdgeBlock` of `[n_edge, ...]` arrays).
    vectors: pure function from an `EdgeBlock` of rows to their edge vectors.
  """

  blocks: EdgeBlock
  vectors: Callable[[EdgeBlock], jax.Array]

  def then(self, update: Callable[[EdgeBlock, jax.Array], jax.Array]) -> 'EdgeStream':
    """The stream of `update(block, vectors(block))`."""
    vectors = self.vectors
    return EdgeStream(self.blocks, lambda block: update(block, vectors(block)))


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


def _to_blocks(x: jax.Array, blocks: int, shards: int) -> jax.Array:
  """`[n_edge, ...]` -> `[blocks, shards, chunk, ...]`: step i takes block i of each shard."""
  return x.reshape((shards, blocks, -1) + x.shape[1:]).swapaxes(0, 1)


def _from_blocks(y: jax.Array) -> jax.Array:
  """The inverse of `_to_blocks`: `[blocks, shards, chunk, ...]` -> `[n_edge, ...]`."""
  y = y.swapaxes(0, 1)
  return y.reshape((-1,) + y.shape[3:])


def scan_edge_blocks(body: Callable[[Any, Any], tuple[Any, Any]], init: Any, edge_arrays: Any,
                     chunk: int, shards: int = 1) -> tuple[Any, Any]:
  """Runs `body` over blocks of the edge axis, rematerialised; reassembles its edge outputs.

  Args:
    body: `(carry, block) -> (carry, out)`, pure (no Flax modules: apply parameters with
      `Module.apply`), where `block` is `edge_arrays` with each leaf `[shards * chunk, ...]`
      and `out` a pytree of `[shards * chunk, ...]` arrays (or None).
    init: the initial carry (small: per node or per graph).
    edge_arrays: a pytree of `[n_edge, ...]` arrays.
    chunk: edges per block and shard.
    shards: contiguous edge ranges (the mesh's `'data'` size when the edges are sharded).

  Returns:
    `(carry, outputs)`, each output leaf `[n_edge, ...]` in the order of the edges.

  Raises:
    ValueError: see `check_blocks`.
  """
  n_edge = jax.tree.leaves(edge_arrays)[0].shape[0]
  blocks = check_blocks(n_edge, chunk, shards)
  xs = jax.tree.map(lambda x: _to_blocks(x, blocks, shards), edge_arrays)

  def step(carry, block):
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), block)
    carry, out = body(carry, flat)
    return carry, jax.tree.map(lambda y: y.reshape((shards, chunk) + y.shape[1:]), out)

  carry, ys = jax.lax.scan(jax.checkpoint(step), init, xs)
  return carry, jax.tree.map(_from_blocks, ys)

"""One graph larger than a device: message passing with the edge axis sharded over a mesh.

A ResNet's or a language model's parameter graph has tens of millions of edges, and a
metanetwork keeps several `[n_edge, d]` arrays per layer. `shard_edges` splits every
edge-indexed array of a batch (edge features, `senders`, `receivers`) into contiguous blocks
over the mesh's `'data'` axis and replicates the node- and graph-indexed ones; the parameters
stay replicated. Under `jax.jit`, XLA's SPMD partitioner (GSPMD) then runs each edge-wise
computation (the edge MLPs, the gathers of per-node projections to the edges) on the device
that holds the edge, and turns each segment reduction over edges (`aggregation.py`'s sums,
means, maxima, counts) into a reduction of the local edges followed by an all-reduce of the
small `[n_node, d]` result across the shards. The metanetwork is unchanged (same module, same
parameters, same outputs up to float rounding); with `GMN(remat_layers=True)` the backward
pass keeps only each layer's input, so per device the memory is about one layer's edge
activations over the shard count; with `GMN(edge_chunk=B, edge_shards=n)` no edge vector is
kept at all (`gmn_jax.metanets.edge_chunks`), each device streams its own edges in blocks of
`B` under `jax.shard_map` (call the model under `jax.set_mesh(mesh)`), the devices meet once
per edge pass, and the memory per device is its share of the input edge arrays plus O(nodes)
plus one block's temporaries.

Host-side placement; the model call itself is the ordinary jitted one.
"""

from __future__ import annotations

import jax
import jraph
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gmn_jax import mesh as mesh_lib


def edge_shardings(graphs: jraph.GraphsTuple, mesh: Mesh) -> jraph.GraphsTuple:
  """A `NamedSharding` per leaf of `graphs`: edge-indexed leaves (`edges`, `senders`,
  `receivers`) split on their first axis over `'data'`, the others replicated.

  Raises:
    ValueError: if the shards do not divide the edge count; the message says what to pad to.
  """
  n_edge = int(np.shape(graphs.senders)[0])
  shards = mesh_lib.data_shards(mesh)
  if n_edge % shards:
    raise ValueError(f'{n_edge} edges cannot be split over {shards} shards; pad the graph to '
                     f'a multiple of {shards} edges (e.g. budget_for(graph, 1, multiple='
                     f'{8 * shards}) and gmn_jax.batch).')
  split, whole = NamedSharding(mesh, P(mesh_lib.DATA_AXIS)), mesh_lib.replicated(mesh)
  tree = jax.tree.map(lambda _: whole, graphs)
  return tree._replace(edges=jax.tree.map(lambda _: split, graphs.edges), senders=split,
                       receivers=split)


def shard_edges(graphs: jraph.GraphsTuple, mesh: Mesh) -> jraph.GraphsTuple:
  """`graphs` placed with `edge_shardings` (each host places its own devices' blocks).

  Args:
    graphs: a (padded) batch, typically one large graph, with `n_edge` a multiple of the
      `'data'` axis size.
    mesh: a mesh with a `'data'` axis (`gmn_jax.make_mesh()`).

  Returns:
    The same GraphsTuple as global `jax.Array`s, ready for `jax.jit(model.apply)`.
  """
  return mesh_lib.place(graphs, edge_shardings(graphs, mesh))

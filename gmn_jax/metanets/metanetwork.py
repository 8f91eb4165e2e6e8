"""What the graph metanetworks share: their input encoding and their readout settings.

GMN, NG-GNN, NG-T and EdgeDeepSets read a batch through `GraphEncoder` and answer through
`Readout`; `Metanetwork` holds the hyperparameters of both, once, and builds them under the
names `encoder` and `readout`.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jraph

from gmn_jax.metanets.batching import GraphIndex
from gmn_jax.metanets.features import GraphEncoder
from gmn_jax.metanets.layer_statistics import LayerStatistics
from gmn_jax.metanets.readout import Readout


class Metanetwork(nn.Module):
  """Base of the metanetworks: input encoding and readout settings (keyword arguments).

  Attributes:
    out_features: width of `globals` in the output.
    readout_hidden: hidden width of the invariant readout MLP.
    readout_depth: its hidden layers (1; neural graphs' INR classifier has 2).
    edge_readout: `'residual'` (theta + gamma * delta, gamma learned) or `'direct'`.
    residual_init: initial gamma (0: the edge readout starts as the identity).
    activation: nonlinearity (of the network and of the readout MLP).
    value_features, n_frequencies, value_scale: value encoding (see `SlotEncoder`).
    normalize_weights: standardise weights per graph and layer before encoding.
    layer_statistics: or standardise them per layer with these data-set statistics
      (`fit_layer_statistics(...).frozen()` of the training graphs; see `GraphEncoder`).
    readout_statistics: standardise the invariant readout MLP's input with these
      (`Readout.input_statistics`, from `fit_readout_statistics`); None: raw.
    readout_pool: what the invariant readout MLP reads: `'all'`, per-graph means of node
      vectors by kind of neuron and of edge vectors, or `'output'`, the output neurons'
      vectors alone (neural graphs' readout; see `pool_graphs`).
    max_kernel_size, max_param_size: K and P slots reserved at init (at least the init
      graphs' K and P; later graphs may be narrower, never wider).
  """

  out_features: int = 1
  readout_hidden: int = 64
  readout_depth: int = 1
  edge_readout: str = 'residual'
  residual_init: float = 0.0
  activation: Callable = nn.silu
  value_features: str = 'sinusoidal'
  n_frequencies: int = 12
  value_scale: float = 1.0
  normalize_weights: bool = False
  layer_statistics: LayerStatistics | None = None
  readout_statistics: tuple[tuple[float, ...], tuple[float, ...]] | None = None
  readout_pool: str = 'all'
  max_kernel_size: int = 1
  max_param_size: int = 1

  def encoder(self, node_dim: int, edge_dim: int, **overrides) -> GraphEncoder:
    """The input encoder, a submodule named `encoder` (construct it from the subclass's
    compact `__call__`); `overrides` replace its settings (e.g. `normalize_weights`)."""
    settings = dict(value_features=self.value_features, n_frequencies=self.n_frequencies,
                    value_scale=self.value_scale, normalize_weights=self.normalize_weights,
                    layer_statistics=self.layer_statistics,
                    max_kernel_size=self.max_kernel_size, max_param_size=self.max_param_size)
    return GraphEncoder(node_dim, edge_dim, **{**settings, **overrides}, name='encoder')

  def encode(self, graphs: jraph.GraphsTuple, index: GraphIndex, node_dim: int,
             edge_dim: int) -> tuple[jax.Array, jax.Array]:
    """Initial node `[n_node, node_dim]` and edge `[n_edge, edge_dim]` vectors (call from
    the subclass's compact `__call__`)."""
    return self.encoder(node_dim, edge_dim)(graphs, index)

  def readout(self, graphs: jraph.GraphsTuple, index: GraphIndex, nodes: jax.Array,
              edges: jax.Array, graph_features: jax.Array | None = None,
              pooled_edges: jax.Array | None = None) -> jraph.GraphsTuple:
    """The output graph (see `Readout`) from the final node and edge vectors."""
    return Readout(self.out_features, self.readout_hidden, self.edge_readout,
                   self.residual_init, self.activation, self.max_kernel_size,
                   self.max_param_size, self.readout_statistics, self.readout_pool,
                   self.readout_depth, name='readout')(graphs, index, nodes, edges,
                                                       graph_features, pooled_edges)

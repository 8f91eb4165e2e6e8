"""Editing networks through their weights: theta' = theta + s * delta, delta per parameter.

The second family of metanetwork tasks outputs new weights (e.g. the INR of a dilated image
from the INR of the image; Lim et al. 2024, Sec. 5; Kofinas et al. 2024, Sec. 5.2). An editor
reads a batch of parameter graphs and returns the same graphs with edited `edges['weight']`
and `nodes['param']`, which `pg.decode` turns back into parameter pytrees:

    theta'_e = theta_e + s_w[layer(e)] * delta_e            (every weight slot of edge e)
    theta'_v = theta_v + s_p[layer(v), slot] * delta_v       (every parameter slot of neuron v)

with learned scales per layer and per kind of parameter (`s_w` per receiving layer; `s_p` per
layer and node slot: bias, normalisation scale, ...), initialised small (0.01 as in the
papers), and `delta` from a zero-initialised output layer, so training starts at the identity
edit. The layer of a neuron is invariant under the hidden-neuron permutations, so the edit is
exactly as equivariant as the metanetwork's node and edge vectors.

- `Editor`: a graph metanetwork (GMN, NG-GNN, NG-T, EdgeDeepSets) reads the graph; a linear
  map of its final edge and node vectors (`edges['hidden']`, `nodes['hidden']`) gives delta.
  With `index_features > 0` it is the *non-equivariant control*: every node also sees its
  index within its graph (sinusoids, as `nodes['probe']` features), so hidden neurons are no
  longer interchangeable.
- `FlatEditor`: the flat-weight baseline, an MLP on the flattened parameters of one
  architecture (`WeightMLP`) predicting the flattened delta.

Jittable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.metanets.baselines import WeightMLP
from gmn_jax.metanets.batching import GraphIndex, graph_index, graph_mask
from gmn_jax.metanets.features import SlotDecoder


class EditScales(nn.Module):
  """`theta + s * delta` with learned per-layer, per-kind scales `s` (see module docstring).

  Attributes:
    scale_init: initial value of every scale (0.01 in Lim et al. 2024 and Kofinas et al. 2024).
    max_layers: layer indices are clipped to `max_layers - 1`.
    max_param_size: node parameter slots with a scale of their own (P of the graphs must not
      exceed it).
  """

  scale_init: float = 0.01
  max_layers: int = 64
  max_param_size: int = 8

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple, index: GraphIndex, delta_w: jax.Array,
               delta_p: jax.Array) -> jraph.GraphsTuple:
    """Edited graphs; `delta_w` `[n_edge, K]`, `delta_p` `[n_node, P]` (masked slots ignored)."""
    weight = jnp.asarray(graphs.edges['weight'])
    param = jnp.asarray(graphs.nodes['param'])
    if param.shape[1] > self.max_param_size:
      raise ValueError(f'the graphs have {param.shape[1]} parameter slots per neuron but the '
                       f'editor scales {self.max_param_size}; raise max_param_size.')
    init = nn.initializers.constant(self.scale_init)
    s_w = jnp.asarray(self.param('weight_scale', init, (self.max_layers,)))
    s_p = jnp.asarray(self.param('param_scale', init, (self.max_layers, self.max_param_size)))
    layer = jnp.clip(jnp.asarray(graphs.nodes['layer']), 0, self.max_layers - 1)
    edge_scale = s_w[layer[index.receivers]][:, None]
    node_scale = s_p[layer][:, :param.shape[1]]
    # where, not a product with the mask: a padding graph's delta may be NaN (FlatEditor).
    delta_w = jnp.where(jnp.asarray(graphs.edges['mask']), delta_w, 0.0)
    delta_p = jnp.where(jnp.asarray(graphs.nodes['param_mask']), delta_p, 0.0)
    return graphs._replace(
        edges={**graphs.edges, 'weight': (weight + edge_scale * delta_w).astype(weight.dtype)},
        nodes={**graphs.nodes, 'param': (param + node_scale * delta_p).astype(param.dtype)})


def _local_index(graphs: jraph.GraphsTuple, index: GraphIndex) -> tuple[jax.Array, jax.Array]:
  """Each edge's `[n_edge]` and node's `[n_node]` index within its own graph."""
  node_start = jnp.cumsum(graphs.n_node) - graphs.n_node
  edge_start = jnp.cumsum(graphs.n_edge) - graphs.n_edge
  return (jnp.arange(index.n_edge) - edge_start[index.edge_graph],
          jnp.arange(index.n_node) - node_start[index.node_graph])


def index_features(graphs: jraph.GraphsTuple, n_features: int) -> jraph.GraphsTuple:
  """The graphs with each node's index within its graph as `n_features` sinusoids in
  `nodes['probe']` (appended to probe values if present): a feature that breaks the
  hidden-neuron permutation symmetry, for non-equivariant controls. Jittable."""
  index = graph_index(graphs)
  _, local_node = _local_index(graphs, index)
  freqs = np.pi / 2.0 ** np.arange(n_features // 2)  # periods 2, 4, 8, ... neurons
  angle = local_node[:, None].astype(jnp.float32) * freqs
  feats = jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], -1)
  mask = jnp.ones(feats.shape, bool)
  nodes = dict(graphs.nodes)
  if 'probe' in nodes:
    feats = jnp.concatenate([jnp.asarray(nodes['probe'], feats.dtype), feats], -1)
    mask = jnp.concatenate([jnp.asarray(nodes['probe_mask']), mask], -1)
  return graphs._replace(nodes={**nodes, 'probe': feats, 'probe_mask': mask})


class Editor(nn.Module):
  """A graph metanetwork as a weight editor: `GraphsTuple -> GraphsTuple` with edited
  `edges['weight']` `[n_edge, K]` and `nodes['param']` `[n_node, P]`; `pg.decode` of one graph
  of the output is the edited parameter pytree. Equivariant if `backbone` is and
  `index_features == 0`.

  Attributes:
    backbone: a `Metanetwork` (GMN, NGGNN, NGT, EdgeDeepSets); its final vectors
      (`edges['hidden']`, `nodes['hidden']`) are read, its own per-parameter readout is not.
    scale_init, max_layers, max_param_size: see `EditScales`.
    max_kernel_size: K slots of the delta map reserved at init.
    index_features: > 0: nodes also see their index within the graph (the non-equivariant
      control; see `index_features`).
  """

  backbone: nn.Module
  scale_init: float = 0.01
  max_layers: int = 64
  max_kernel_size: int = 1
  max_param_size: int = 8
  index_features: int = 0

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    index = graph_index(graphs)
    read = index_features(graphs, self.index_features) if self.index_features else graphs
    out = self.backbone(read)
    k = jnp.shape(graphs.edges['weight'])[1]
    p = jnp.shape(graphs.nodes['param'])[1]
    zeros = nn.initializers.zeros
    delta_w = SlotDecoder(self.max_kernel_size, zeros, name='edge_delta')(out.edges['hidden'], k)
    delta_p = SlotDecoder(self.max_param_size, zeros, name='node_delta')(out.nodes['hidden'], p)
    return EditScales(self.scale_init, self.max_layers, self.max_param_size, name='scales')(
        graphs, index, delta_w, delta_p)


class FlatEditor(nn.Module):
  """The flat-weight baseline editor: an MLP (`WeightMLP`) on one architecture's flattened
  parameters predicts the flattened delta, applied as in `Editor`. Not equivariant.

  Attributes:
    n_node, n_edge: nodes and edges per graph of the architecture (`FlatEditor.for_architecture`).
    kernel_size, param_size: the template's K and P.
    hidden: MLP widths.
    activation: of the MLP.
    scale_init, max_layers: see `EditScales`.
  """

  n_node: int
  n_edge: int
  kernel_size: int
  param_size: int
  hidden: Sequence[int] = (256, 256)
  activation: Callable = nn.relu
  scale_init: float = 0.01
  max_layers: int = 64

  @classmethod
  def for_architecture(cls, template, **kwargs) -> 'FlatEditor':
    """A FlatEditor for the architecture of `template` (a ParameterGraph)."""
    return cls(n_node=template.n_node, n_edge=template.n_edge,
               kernel_size=template.kernel_size, param_size=template.node_param_size, **kwargs)

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    index = graph_index(graphs)
    hidden = tuple(self.hidden)
    trunk = WeightMLP(self.n_node, self.n_edge, out_features=hidden[-1], hidden=hidden[:-1],
                      activation=self.activation, name='trunk')
    h = self.activation(trunk(graphs).globals)
    e, n, k, p = self.n_edge, self.n_node, self.kernel_size, self.param_size
    flat = nn.Dense(e * k + n * p, kernel_init=nn.initializers.zeros, name='delta')(h)
    local_e, local_n = _local_index(graphs, index)
    real = graph_mask(graphs)
    edge_ok = real[index.edge_graph] & (local_e < e)
    node_ok = real[index.node_graph] & (local_n < n)
    per_w = flat[:, :e * k].reshape(-1, e, k)[index.edge_graph, jnp.clip(local_e, 0, e - 1)]
    per_p = flat[:, e * k:].reshape(-1, n, p)[index.node_graph, jnp.clip(local_n, 0, n - 1)]
    kw, kp = jnp.shape(graphs.edges['weight'])[1], jnp.shape(graphs.nodes['param'])[1]
    delta_w = jnp.where(edge_ok[:, None], jnp.pad(per_w, ((0, 0), (0, max(kw - k, 0))))[:, :kw],
                        jnp.nan)
    delta_p = jnp.where(node_ok[:, None], jnp.pad(per_p, ((0, 0), (0, max(kp - p, 0))))[:, :kp],
                        jnp.nan)
    return EditScales(self.scale_init, self.max_layers, max(self.param_size, kp),
                      name='scales')(graphs, index, delta_w, delta_p)

"""NG-GNN and NG-T: the neural-graph metanetworks of Kofinas et al. (ICLR 2024).

NG-GNN is a Principal Neighbourhood Aggregation network (mean, min, max and std with identity
and amplification degree scalers) whose messages are modulated by the edge, FiLM-style,

    m_ij = scale(e_ij) * (W_i x_i + W_j x_j) + shift(e_ij),

followed by a post-aggregation linear map, LayerNorm, SiLU and a residual connection, and an
edge update after every layer, e_ij <- e_ij + W_1 act(W_e e_ij + W_s x_i + W_t x_j).

NG-T is a relational transformer: node i attends to its neighbours j with edge-conditioned
queries, keys and values,

    q_ij = q(x_i) + q_e(e_ij),  k_ij = k(x_j) + k_e(e_ij),  v_ij = v(x_j) * scale(e_ij) + shift(e_ij),

softmax over j, post-LayerNorm residual node updates (attention, then a feed-forward block),
and edge updates e_ij <- LN(e_ij + MLP(e_ij, x_i, x_j)).

Where these depart from the published code, on purpose:
- Normalisation: the published NG-GNN normalises each layer's node update once over the
  whole mini-batch (PyTorch Geometric's graph-mode LayerNorm without a batch vector), so a
  network's prediction depends on its batch-mates. Ours normalises per node vector (and per
  edge vector) inside a residual stream by default, or, with `norm='graph'` and
  `residual=False`, as the published code but once per graph (`GraphNorm`).
- Messages flow both ways along every edge, with the direction as a feature (its own bias and
  its own node projections), as in GMN.
- NG-T attends over the edges of the graph (both directions) and each node itself, not over
  all node pairs of a dense graph; its edge update therefore has no e_ji term (a parameter
  graph is a DAG, so e_ji is absent for every edge). This is what makes it scale with the
  number of parameters rather than the square of the number of neurons.
- The invariant readout pools node vectors per kind of neuron and edge vectors (`Readout`)
  rather than concatenating the output neurons' vectors, so one model reads several
  architectures.

Published sizes are available as presets: `NGGNN.preset('small_cnn_zoo')`, `NGT.preset('inr')`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import numpy as np

from gmn_jax.metanets import aggregation as agg_ops
from gmn_jax.metanets.batching import GraphIndex, graph_index
from gmn_jax.metanets.gmn import stack_layers
from gmn_jax.metanets.metanetwork import Metanetwork


class GraphNorm(nn.Module):
  """Standardises `x` `[n, d]` per graph over all its rows and features together (one mean
  and one variance per graph), then a learned per-feature scale and shift. Jittable.

  PyTorch Geometric's `LayerNorm(mode='graph')`, which neural graphs' PNA applies without a
  batch vector, i.e. over the whole mini-batch; here per graph, so that a graph's output
  does not depend on its batch-mates. Unlike a LayerNorm per row, it keeps how the rows of
  one graph differ in size. Padding rows belong to padding graphs.
  """

  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, graph: jax.Array, n_graph: int) -> jax.Array:
    mean = agg_ops.segment_mean(x.mean(-1), graph, n_graph)[graph][:, None]
    centred = x - mean
    var = agg_ops.segment_mean((centred ** 2).mean(-1), graph, n_graph)[graph][:, None]
    scale = self.param('scale', nn.initializers.ones, (x.shape[-1],))
    bias = self.param('bias', nn.initializers.zeros, (x.shape[-1],))
    return centred * jax.lax.rsqrt(var + self.epsilon) * scale + bias


NORMS = ('node', 'graph', 'none')


class NGGNNLayer(nn.Module):
  """One NG-GNN layer: FiLM-modulated PNA messages, node update, edge update.

  `norm` and `residual`: see `NGGNN`.
  """

  node_dim: int
  edge_dim: int
  aggregators: tuple[str, ...]
  scalers: tuple[str, ...]
  avg_log_degree: float
  bidirectional: bool
  activation: Callable
  norm: str = 'node'
  residual: bool = True

  @nn.compact
  def __call__(self, carry: tuple[jax.Array, jax.Array],
               index: GraphIndex) -> tuple[tuple[jax.Array, jax.Array], None]:
    x, e = carry
    d, act = self.node_dim, self.activation
    s, r = index.senders, index.receivers
    take = agg_ops.gather
    dense = lambda width, name: nn.Dense(width, name=name)
    # FiLM of the edge; the direction enters through a bias per direction.
    scale, shift = dense(d, 'film_scale')(e), dense(d, 'film_shift')(e)
    n_dir = 2 if self.bidirectional else 1
    film_bias = self.param('film_direction_bias', nn.initializers.zeros, (n_dir, 2, d))

    def message(k, receiver, sender):
      # W_i x_i + W_j x_j, with i the receiving node of this direction.
      pre = (take(dense(d, f'receiver_proj_{k}')(x), receiver)
             + take(dense(d, f'sender_proj_{k}')(x), sender))
      return (scale + film_bias[k, 0]) * pre + (shift + film_bias[k, 1])

    parts = [(message(0, r, s), r)]
    if self.bidirectional:
      parts.append((message(1, s, r), s))
    agg = agg_ops.aggregate_parts(parts, index.n_node, self.aggregators, self.scalers,
                                  self.avg_log_degree)
    update = dense(d, 'post_self')(x) + dense(d, 'post_agg')(agg)
    if self.norm == 'node':
      update = nn.LayerNorm(name='node_norm')(update)
    elif self.norm == 'graph':
      update = GraphNorm(name='node_norm')(update, index.node_graph, index.n_graph)
    x = x + act(update) if self.residual else act(update)

    hidden = (dense(self.edge_dim, 'edge_proj')(e)
              + take(dense(self.edge_dim, 'edge_sender')(x), s)
              + take(dense(self.edge_dim, 'edge_receiver')(x), r))
    out = dense(self.edge_dim, 'edge_out')(act(hidden))
    e = e + out if self.residual else out
    if self.norm == 'node':
      e = nn.LayerNorm(name='edge_norm')(e)
    return (x, e), None


class NGGNN(Metanetwork):
  """NG-GNN (Kofinas et al. 2024): `jraph.GraphsTuple -> jraph.GraphsTuple`.

  Input and output as for `gmn_jax.GMN` (`globals` `[n_graph, out_features]`, per-parameter
  outputs in `edges['weight']` and `nodes['param']`).

  Attributes:
    hidden_dim: node and edge vector width (32 by default; 256 for the Small CNN Zoo).
    edge_dim: edge vector width (None: `hidden_dim`).
    num_layers: PNA layers (4).
    aggregation: `'pna'` (mean, min, max, std; identity and amplification) or as in `GMN`.
    avg_log_degree: the PNA degree normaliser (see `gmn_jax.mean_log_degree`).
    bidirectional: messages along and against each edge.
    norm: how each layer normalises its node update: `'node'`, a LayerNorm per node vector
      (and per edge vector after the edge update); `'graph'`, one mean and variance per
      graph over all its node vectors (`GraphNorm`; edges unnormalised), as neural graphs
      but per graph rather than per mini-batch; `'none'`.
    residual: add each layer's node and edge updates to its input (True) or replace the
      input with them (False, as neural graphs).
    scan_layers: see `GMN`.
    The readout, activation and value-encoding settings: see `Metanetwork`.
  """

  hidden_dim: int = 32
  edge_dim: int | None = None
  num_layers: int = 4
  aggregation: Any = 'pna'
  avg_log_degree: float = 1.0
  bidirectional: bool = True
  norm: str = 'node'
  residual: bool = True
  scan_layers: bool = False

  PRESETS = {
      'default': dict(hidden_dim=32),
      'inr': dict(hidden_dim=64),
      'small_cnn_zoo': dict(hidden_dim=256),
  }

  @classmethod
  def preset(cls, name: str, **overrides) -> 'NGGNN':
    """The published configuration `name` (`'default'`: hidden 32, `'inr'`: hidden 64,
    `'small_cnn_zoo'`: hidden 256), with `overrides` applied."""
    if name not in cls.PRESETS:
      raise ValueError(f'unknown NG-GNN preset {name!r}; choose from {sorted(cls.PRESETS)}')
    return cls(**{**cls.PRESETS[name], **overrides})

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    if self.norm not in NORMS:
      raise ValueError(f'unknown NG-GNN norm {self.norm!r}; choose from {NORMS}')
    index = graph_index(graphs)
    aggregators, scalers = agg_ops.resolve_aggregation(self.aggregation)
    edge_dim = self.edge_dim or self.hidden_dim
    x, e = self.encode(graphs, index, self.hidden_dim, edge_dim)
    x, e = stack_layers(NGGNNLayer, self.num_layers, (x, e), index, node_dim=self.hidden_dim,
                       edge_dim=edge_dim, aggregators=aggregators, scalers=scalers,
                       avg_log_degree=self.avg_log_degree, bidirectional=self.bidirectional,
                       activation=self.activation, norm=self.norm, residual=self.residual,
                       scan=self.scan_layers)
    return self.readout(graphs, index, x, e)


class NGTLayer(nn.Module):
  """One NG-T layer: edge-conditioned multi-head attention, feed-forward, edge update."""

  node_dim: int
  edge_dim: int
  ffn_dim: int
  num_heads: int
  bidirectional: bool
  activation: Callable

  @nn.compact
  def __call__(self, carry: tuple[jax.Array, jax.Array],
               index: GraphIndex) -> tuple[tuple[jax.Array, jax.Array], None]:
    x, e = carry
    d, h = self.node_dim, self.num_heads
    if d % h:
      raise ValueError(f'node_dim {d} is not divisible by num_heads {h}')
    s, r = index.senders, index.receivers
    take = agg_ops.gather
    dense = lambda width, name: nn.Dense(width, name=name)
    n_dir = 2 if self.bidirectional else 1
    # Edge parts of [query, key, value scale, value shift]; the direction enters as a bias.
    at_edge = [dense(d, f'edge_{name}')(e) for name in ('query', 'key', 'scale', 'shift')]
    direction = self.param('direction_bias', nn.initializers.zeros, (n_dir, 4, d))
    # A node attends to itself too, with a learned edge vector of its own.
    self_edge = self.param('self_edge', nn.initializers.zeros, (4, d))
    q, k, v = (dense(d, f'node_{name}')(x) for name in ('query', 'key', 'value'))

    # [d, h] indicator of each head's dimensions: per-head sums and broadcasts as matmuls
    # (reshaping edge-sized arrays to [m, h, d / h] costs an integer division per element).
    heads = jnp.asarray(np.kron(np.eye(h), np.ones((d // h, 1))), x.dtype)

    def attend(q_node, k_node, v_node, edge):
      query = q_node + edge[0]
      key = k_node + edge[1]
      value = v_node * (1 + edge[2]) + edge[3]
      logits = ((query * key) @ heads) / np.sqrt(d // h)
      return logits, value

    def edge_terms(k_dir):
      return [at_edge[i] + direction[k_dir, i] for i in range(4)]

    messages = [attend(take(q, r), take(k, s), take(v, s), edge_terms(0))]
    targets = [r]
    if self.bidirectional:
      messages.append(attend(take(q, s), take(k, r), take(v, r), edge_terms(1)))
      targets.append(s)
    messages.append(attend(q, k, v, [self_edge[i] for i in range(4)]))
    targets.append(None)
    weights = agg_ops.segment_softmax_parts(
        [(logits, ids) for (logits, _), ids in zip(messages, targets)], index.n_node)
    attended = 0
    for w, (_, value), ids in zip(weights, messages, targets):
      weighted = value * (w @ heads.T)
      attended = attended + (weighted if ids is None else
                             jax.ops.segment_sum(weighted, ids, index.n_node))
    x = nn.LayerNorm(name='attention_norm')(x + dense(d, 'attention_out')(attended))
    ffn = dense(d, 'ffn_out')(self.activation(dense(self.ffn_dim, 'ffn_in')(x)))
    x = nn.LayerNorm(name='ffn_norm')(x + ffn)

    hidden = (dense(self.ffn_dim, 'edge_in')(e) + take(dense(self.ffn_dim, 'edge_sender')(x), s)
              + take(dense(self.ffn_dim, 'edge_receiver')(x), r))
    e = nn.LayerNorm(name='edge_norm')(e + dense(self.edge_dim, 'edge_out')(
        self.activation(hidden)))
    return (x, e), None


class NGT(Metanetwork):
  """NG-T, the neural-graph relational transformer (Kofinas et al. 2024).

  `jraph.GraphsTuple -> jraph.GraphsTuple`; input and output as for `gmn_jax.GMN`.

  Attributes:
    node_dim: node vector width (64 for INRs, 128 for the Small CNN Zoo).
    edge_dim: edge vector width (32 for INRs, 64 for the Small CNN Zoo).
    ffn_dim: hidden width of the feed-forward and edge-update blocks (None: 2 * node_dim;
      256 for the Small CNN Zoo).
    num_layers: transformer layers (4).
    num_heads: attention heads (8).
    bidirectional: attend along and against each edge.
    scan_layers: see `GMN`.
    The readout, activation and value-encoding settings: see `Metanetwork`.
  """

  node_dim: int = 64
  edge_dim: int = 32
  ffn_dim: int | None = None
  num_layers: int = 4
  num_heads: int = 8
  bidirectional: bool = True
  scan_layers: bool = False

  PRESETS = {
      'default': dict(node_dim=64, edge_dim=32),
      'inr': dict(node_dim=64, edge_dim=32, num_layers=4, num_heads=8),
      'small_cnn_zoo': dict(node_dim=128, edge_dim=64, ffn_dim=256, num_layers=4,
                            num_heads=8),
  }

  @classmethod
  def preset(cls, name: str, **overrides) -> 'NGT':
    """The published configuration `name` (`'inr'`: 64/32, `'small_cnn_zoo'`: 128/64 with
    feed-forward 256; 4 layers, 8 heads), with `overrides` applied."""
    if name not in cls.PRESETS:
      raise ValueError(f'unknown NG-T preset {name!r}; choose from {sorted(cls.PRESETS)}')
    return cls(**{**cls.PRESETS[name], **overrides})

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    index = graph_index(graphs)
    x, e = self.encode(graphs, index, self.node_dim, self.edge_dim)
    x = nn.LayerNorm(name='input_node_norm')(x)
    e = nn.LayerNorm(name='input_edge_norm')(e)
    x, e = stack_layers(NGTLayer, self.num_layers, (x, e), index, node_dim=self.node_dim,
                       edge_dim=self.edge_dim, ffn_dim=self.ffn_dim or 2 * self.node_dim,
                       num_heads=self.num_heads, bidirectional=self.bidirectional,
                       activation=self.activation, scan=self.scan_layers)
    return self.readout(graphs, index, x, e)

"""Update rules of learned optimizers: per-parameter features in, per-parameter outputs out.

Every rule works in the slots of the optimizee's parameter graph: `edges` `[E, K, 14]` (a
weight, or one kernel entry of a convolution edge) and `nodes` `[N, P, 14]` (biases,
normalisation parameters), with the features of `optimizer_features`, and returns two numbers
per slot, (scale, magnitude), that `LearnedOptimizer` turns into the step
`scale * 0.01 * exp(0.01 * magnitude)` (Kofinas et al. 2024, after Metz et al. 2019).

- `PerParameterMLP`: the same MLP on every parameter's features (Metz et al. 2019's "FF").
- `PerParameterLSTM`: an LSTM cell per parameter, its state carried from step to step
  (the LSTM learned optimizer of Andrychowicz et al. 2016, coordinate-wise).
- `GraphRule`: a graph metanetwork (GMN, NG-GNN) runs on the optimizee's graph and its final
  edge and node vectors are broadcast to every slot of their edge or node and concatenated
  with the slot's features before the per-parameter MLP (the neural-graphs paper's learned
  optimizer). Its edge and node vectors move with any neuron permutation, so the update does.

All jittable; Flax modules whose `__call__(inputs, carry)` returns `(edges, nodes, carry)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from gmn_jax.metanets.readout import MLP


class RuleInputs(NamedTuple):
  """What an update rule reads at one step.

  Attributes:
    edges: `[E, K, F]` features of the parameters held by edges.
    nodes: `[N, P, F]` features of the parameters held by nodes.
    graph: the optimizee's graph with `graph_channels` in its slots (`[E, 3K]`, `[N, 3P]`),
      for the graph rules.
  """

  edges: jax.Array
  nodes: jax.Array
  graph: jraph.GraphsTuple


def _head(hidden: Sequence[int], name: str = 'head') -> MLP:
  return MLP(tuple(hidden) + (2,), nn.relu, name=name)


class PerParameterMLP(nn.Module):
  """Metz et al. (2019)'s per-parameter MLP ("FF"): hidden 64 x 2 by default."""

  hidden: Sequence[int] = (64, 64)

  def initial_carry(self, edges_shape: tuple[int, ...], nodes_shape: tuple[int, ...]) -> Any:
    """No state: `()`."""
    del edges_shape, nodes_shape
    return ()

  @nn.compact
  def __call__(self, inputs: RuleInputs, carry: Any) -> tuple[jax.Array, jax.Array, Any]:
    head = _head(self.hidden)
    return head(inputs.edges), head(inputs.nodes), carry


class PerParameterLSTM(nn.Module):
  """A coordinate-wise LSTM (hidden 32 by default) with a linear output per parameter."""

  hidden: int = 32

  def initial_carry(self, edges_shape: tuple[int, ...], nodes_shape: tuple[int, ...]) -> Any:
    """Zero (c, h) per slot: `[E, K, hidden]` and `[N, P, hidden]` each."""
    zeros = lambda shape: jnp.zeros(tuple(shape[:-1]) + (self.hidden,), jnp.float32)
    return ((zeros(edges_shape), zeros(edges_shape)), (zeros(nodes_shape), zeros(nodes_shape)))

  @nn.compact
  def __call__(self, inputs: RuleInputs, carry: Any) -> tuple[jax.Array, jax.Array, Any]:
    cell = nn.OptimizedLSTMCell(self.hidden, name='cell')
    head = nn.Dense(2, name='head')
    edge_carry, edge_h = cell(carry[0], inputs.edges)
    node_carry, node_h = cell(carry[1], inputs.nodes)
    return head(edge_h), head(node_h), (edge_carry, node_carry)


class GraphRule(nn.Module):
  """A graph metanetwork on the optimizee's graph, then a per-parameter MLP.

  Attributes:
    metanetwork: a `gmn_jax.Metanetwork` (GMN, NG-GNN) whose output graph carries
      `edges['hidden']` `[E, D]` and `nodes['hidden']` `[N, D]` (every one does, see
      `Readout`); give it `max_kernel_size` and `max_param_size` of at least 3x the widest K
      and P it will see.
    hidden: the per-parameter MLP's hidden widths.
  """

  metanetwork: nn.Module
  hidden: Sequence[int] = (64, 64)

  def initial_carry(self, edges_shape: tuple[int, ...], nodes_shape: tuple[int, ...]) -> Any:
    """No state: `()`."""
    del edges_shape, nodes_shape
    return ()

  @nn.compact
  def __call__(self, inputs: RuleInputs, carry: Any) -> tuple[jax.Array, jax.Array, Any]:
    out = self.metanetwork(inputs.graph)
    edge_h, node_h = out.edges['hidden'], out.nodes['hidden']
    broadcast = lambda h, x: jnp.broadcast_to(h[:, None, :], x.shape[:2] + h.shape[-1:])
    edges = _head(self.hidden, 'edge_head')(
        jnp.concatenate([broadcast(edge_h, inputs.edges), inputs.edges], -1))
    nodes = _head(self.hidden, 'node_head')(jnp.concatenate([broadcast(node_h, inputs.nodes), inputs.nodes], -1))
    return edges, nodes, carry

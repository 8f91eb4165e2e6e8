"""Learned probe features for SIRENs (Kofinas et al. 2024, §3, "probe features"): learnable
input coordinates are run through each INR, read from its parameter graph, and every neuron's
activations become its probe features, which the wrapped metanetwork adds to its node vectors
(`GraphEncoder` reads `nodes['probe']`).

The INR is evaluated on the graph itself, layer by layer: input neuron p holds coordinate p of
each probe; a neuron of layer l sums its incoming edges' weight times its sender's value, adds
its bias and applies `sin(omega0 * .)` (hidden layers) or nothing plus `output_offset` (the
output layer). So a permutation of hidden neurons permutes their features with them, a sine
sign flip (incoming weights and bias negated, outgoing weights negated) negates the flipped
neuron's features and leaves every other neuron's unchanged, and the output neurons read the
image the INR draws at the probe coordinates. Only a plain SIREN graph (Dense layers, sine
hidden neurons, linear output) is read correctly: `check_siren_graph` refuses others.
Jittable.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph

from gmn_jax.graphs.architecture import NodeType
from gmn_jax.graphs.parameter_graph import ParameterGraph


def check_siren_graph(pg: ParameterGraph) -> None:
  """Raises ValueError unless `pg` is a SIREN's graph: 2 inputs, one weight per edge, one
  bias per neuron, every hidden neuron's program a sine. Host-side."""
  programs = ' '.join(pg.programs.values())
  if pg.kernel_size != 1 or 'sin' not in programs:
    raise ValueError('learned INR probes read SIREN graphs only (Dense layers of sine neurons, '
                     f'one weight per edge); this graph has kernel slots {pg.kernel_size} and '
                     f'programs {sorted(pg.programs.values())[:4]}')


def siren_probe_values(graphs: jraph.GraphsTuple, coords: jax.Array, omega0: float,
                       n_layers: int, output_offset: float = 0.0) -> jax.Array:
  """`[n_node, K]` every neuron's activation at K coordinates, read off SIREN graphs. Jittable.

  Args:
    graphs: a (batched, padded) GraphsTuple of SIRENs from `pg.encode`.
    coords: `[K, 2]` probe coordinates in the INRs' input space.
    omega0: the SIRENs' sine frequency factor.
    n_layers: Dense layers (hidden layers + 1).
    output_offset: added to the output layer (0.5 in the DWSNets convention).

  Returns:
    Input neurons: their coordinate; hidden neurons: `sin(omega0 * z)`; outputs: `z + offset`.
  """
  nodes, edges = graphs.nodes, graphs.edges
  layer = jnp.asarray(nodes['layer'])
  kind = jnp.asarray(nodes['type'])
  position = jnp.clip(jnp.asarray(nodes['position']), 0, coords.shape[1] - 1)
  weight = jnp.asarray(edges['weight'])[:, 0] * jnp.asarray(edges['mask'])[:, 0]
  bias = jnp.asarray(nodes['param'])[:, 0] * jnp.asarray(nodes['param_mask'])[:, 0]
  senders, receivers = jnp.asarray(graphs.senders), jnp.asarray(graphs.receivers)
  n_node = layer.shape[0]
  values = jnp.where((kind == NodeType.INPUT)[:, None], coords.T[position], 0.0)
  for depth in range(1, n_layers + 1):
    z = jax.ops.segment_sum(weight[:, None] * values[senders], receivers, n_node) + bias[:, None]
    out = jnp.sin(omega0 * z) if depth < n_layers else z + output_offset
    values = jnp.where((layer == depth)[:, None], out, values)
  return values


class LearnedProbes(nn.Module):
  """Wraps a metanetwork: learnable probe coordinates, run through every input SIREN, become
  `nodes['probe']` before the metanetwork reads the graphs. Jittable.

  Attributes:
    metanetwork: the wrapped module (GMN, NGGNN, NGT, ...).
    n_probes: K learnable coordinates, initialised uniform in [-1, 1]^2.
    omega0, n_layers, output_offset: the SIRENs' (see `siren_probe_values`).
  """

  metanetwork: nn.Module
  n_probes: int = 16
  omega0: float = 30.0
  n_layers: int = 3
  output_offset: float = 0.0

  @nn.compact
  def __call__(self, graphs: jraph.GraphsTuple) -> jraph.GraphsTuple:
    init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
    coords = self.param('coordinates', init, (self.n_probes, 2))
    values = siren_probe_values(graphs, coords, self.omega0, self.n_layers, self.output_offset)
    real = jnp.asarray(graphs.nodes['type']) <= NodeType.OUTPUT
    mask = jnp.broadcast_to(real[:, None], values.shape)
    nodes = {**graphs.nodes, 'probe': jnp.where(mask, values, 0.0), 'probe_mask': mask}
    return self.metanetwork(graphs._replace(nodes=nodes))


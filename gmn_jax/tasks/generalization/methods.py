"""The accuracy-prediction task's methods: a new one is one `REGISTRY` entry.

A builder takes `(config, sizes, template)`: the `GeneralizationConfig`, the padding budget's
`max_kernel_size` and `max_param_size` (keyword arguments of the graph metanetworks), and the
`ParameterGraph` of the one architecture a flat-weight method reads.
"""

from __future__ import annotations

from gmn_jax.metanets.baselines import StatNN, WeightMLP
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.metanets.scalegmn import ScaleGMN
from gmn_jax.tasks.registry import PERMUTATIONS, Method


def _gmn(c, sizes, _):
  return GMN(node_dim=c.hidden, edge_dim=c.hidden, num_layers=c.layers,
             readout_hidden=c.hidden, **sizes)


def _nggnn(c, sizes, _):
  if c.protocol == 'published':
    return NGGNN.preset('small_cnn_zoo', **sizes)
  return NGGNN(hidden_dim=c.hidden, num_layers=c.layers, readout_hidden=c.hidden, **sizes)


def _ngt(c, sizes, _):
  if c.protocol == 'published':
    return NGT.preset('small_cnn_zoo', readout_hidden=256, **sizes)
  return NGT(node_dim=c.hidden, edge_dim=c.hidden, num_layers=c.layers,
             readout_hidden=c.hidden, **sizes)


def _scalegmn(c, sizes, _):
  return ScaleGMN(hidden_dim=c.hidden, num_layers=c.layers, readout_hidden=c.hidden, **sizes)


def _statnn(c, sizes, _):
  return StatNN(hidden=(4 * c.hidden, 4 * c.hidden))


def _mlp(c, sizes, template):
  return WeightMLP(n_node=template.n_node, n_edge=template.n_edge, hidden=(4 * c.hidden,) * 2)


# Scale and sign augmentation helps the graph metanetworks; weight statistics and flat weights
# cannot learn to ignore a neuron's scale, so they train with permutations only.
REGISTRY: dict[str, Method] = {
    'gmn': Method('GMN', _gmn),
    'nggnn': Method('NG-GNN', _nggnn),
    'scalegmn': Method('ScaleGMN', _scalegmn),
    'statnn': Method('StatNN', _statnn, graph=False, augment=PERMUTATIONS),
    # StatNN's statistics into gradient-boosted trees (`baselines.fit_statnn_gbm`).
    'statnn_gbm': Method('StatNN (GBM)', None, graph=False, augment=PERMUTATIONS),
    'mlp': Method('flat MLP', _mlp, graph=False, augment=PERMUTATIONS),
    'ngt': Method('NG-T', _ngt),
}
METHODS = tuple(REGISTRY)
DEFAULT_METHODS = ('gmn', 'nggnn', 'statnn', 'statnn_gbm', 'mlp')

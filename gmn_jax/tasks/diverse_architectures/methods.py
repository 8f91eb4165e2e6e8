"""The diverse-architectures task's methods: a new one is one `REGISTRY` entry.

A builder takes `(config, sizes, longest)`: the `DiverseArchitecturesConfig`, the padding
budget's `max_kernel_size` and `max_param_size` (keyword arguments of the graph
metanetworks), and the most parameters any network of the zoo has (the sequence baselines'
length).
"""

from __future__ import annotations

from gmn_jax.metanets.baselines import StatNN
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.metanets.sequence_baselines import DMC, ParameterDeepSets
from gmn_jax.tasks.registry import PERMUTATIONS, Method


def _gmn(c, sizes, _):
  h = c.hidden
  return GMN(node_dim=h, edge_dim=h, num_layers=c.layers, readout_hidden=h, **sizes)


def _nggnn(c, sizes, _):
  return NGGNN(hidden_dim=c.hidden, num_layers=c.layers, readout_hidden=c.hidden, **sizes)


def _ngt(c, sizes, _):
  h = c.hidden
  return NGT(node_dim=h, edge_dim=h // 2, num_layers=c.layers, num_heads=4, readout_hidden=h,
             **sizes)


def _dmc(c, _, longest):
  h = c.hidden
  return DMC(max_length=longest, channels=(8, 16, 2 * h, 2 * h), hidden=(2 * h,))


def _deepsets(c, _, longest):
  return ParameterDeepSets(max_length=longest, hidden=2 * c.hidden)


def _statnn(c, _, __):
  return StatNN(hidden=(4 * c.hidden, 4 * c.hidden))


# The baselines read flat parameters or their statistics: permutation augmentation only.
REGISTRY: dict[str, Method] = {
    'gmn': Method('GMN', _gmn),
    'nggnn': Method('NG-GNN', _nggnn),
    'ngt': Method('NG-T', _ngt),
    'dmc': Method('DMC', _dmc, graph=False, augment=PERMUTATIONS),
    'deepsets': Method('DeepSets (params)', _deepsets, graph=False, augment=PERMUTATIONS),
    'statnn': Method('StatNN', _statnn, graph=False, augment=PERMUTATIONS),
}
METHODS = tuple(REGISTRY)
DEFAULT_METHODS = ('gmn', 'dmc', 'deepsets', 'statnn')

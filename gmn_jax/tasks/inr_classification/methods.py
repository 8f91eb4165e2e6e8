"""The INR classification task's methods: a new one is one `REGISTRY` entry.

A builder takes `(config, common, num_classes, template)`: the `InrClassificationConfig`, the
readout, budget and value-encoding keyword arguments shared by the graph metanetworks, the
number of classes and the SIREN's `ParameterGraph`. Methods with `probes=True` are wrapped in
`LearnedProbes` by the task.
"""

from __future__ import annotations

from gmn_jax.metanets.baselines import EdgeDeepSets, StatNN, WeightMLP
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.metanets.scalegmn import ScaleGMN
from gmn_jax.tasks.registry import NO_AUGMENT, PERMUTATIONS, Labels, Method


def _gmn(c, common, k, _):
  return GMN(node_dim=c.hidden, edge_dim=c.hidden, num_layers=c.layers, out_features=k,
             **common)


def _nggnn(c, common, k, _):
  return NGGNN(hidden_dim=c.hidden, num_layers=c.layers, out_features=k, **common)


def _scalegmn(c, common, k, _):
  # Equivariant to the sine neurons' sign flips too; per-layer standardisation would not be
  # (a flipped or scaled neuron changes its layer's statistics), so it reads the raw values;
  # its readout pools its own invariant features.
  kwargs = {key: value for key, value in common.items()
            if key not in ('normalize_weights', 'layer_statistics', 'readout_pool')}
  return ScaleGMN(hidden_dim=c.hidden, num_layers=c.layers, out_features=k, **kwargs)


def _ngt(c, common, k, _):
  return NGT(node_dim=2 * c.hidden, edge_dim=c.hidden, num_layers=c.layers, num_heads=4,
             out_features=k, **common)


# A new method is one entry here (and, if it needs one, a builder above). Weight statistics
# cannot learn to ignore a sine neuron's sign flip: permutations only (a no-op for them, as
# for DeepSets, which trains the same way: with sign flips its training loss stays at ln 10 on
# the default zoo, without them it leaves it). The flat MLP reads a fixed layout that a
# neuron permutation scrambles: no augmentation, as DWSNets trains its MLP baseline
# (`--permutation False`).
REGISTRY: dict[str, Method] = {
    'gmn': Method('GMN', _gmn),
    'gmn_probes': Method('GMN + probes', _gmn, probes=True),
    'nggnn': Method('NG-GNN', _nggnn),
    'nggnn_probes': Method('NG-GNN + probes', _nggnn, probes=True),
    'ngt': Method('NG-T', _ngt),
    'ngt_probes': Method('NG-T + probes', _ngt, probes=True),
    'scalegmn': Method('ScaleGMN', _scalegmn),
    'deepsets': Method('DeepSets', lambda c, common, k, _: EdgeDeepSets(
        hidden_dim=2 * c.hidden, out_features=k, **common), graph=False, augment=PERMUTATIONS),
    'statnn': Method('StatNN', lambda c, common, k, _: StatNN(
        out_features=k, hidden=(4 * c.hidden, 4 * c.hidden)), graph=False, augment=PERMUTATIONS),
    'mlp': Method('flat MLP', lambda c, common, k, template: WeightMLP.for_architecture(
        template, out_features=k, hidden=(4 * c.hidden, 4 * c.hidden)), graph=False,
        augment=NO_AUGMENT),
}
METHODS = tuple(REGISTRY)
# Two graph metanetworks reading learned probe features, as the neural-graphs paper reads
# INRs, NG-GNN on the weights alone, and the three baselines (which read the weights alone);
# `--methods` adds the weights-only `gmn`, `ngt`, `ngt_probes` and `scalegmn`.
DEFAULT_METHODS = ('gmn_probes', 'nggnn_probes', 'nggnn', 'deepsets', 'statnn', 'mlp')
LABELS = Labels(REGISTRY)

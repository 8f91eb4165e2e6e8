"""Stage 2, metanetworks: `jraph.GraphsTuple` in, predictions (per graph, node or edge) out.

`batching` pads graphs to a fixed budget (one compilation per run); `features` encodes values,
types and positions; `aggregation` holds the masked segment reductions messages are passed
with; `readout` turns node and edge states into outputs; `metanetwork` is the base the models
share; `gmn` (GMN), `neural_graphs` (NG-GNN, NG-T) and `baselines` (StatNN, the flat-weight
MLP, DeepSets over edges) are the models; `inr_probes` wraps one with learned probe
coordinates run through SIREN graphs. Reads `graphs` only (node and edge types).
"""

from gmn_jax.metanets.baselines import EdgeDeepSets, StatNN, WeightMLP
from gmn_jax.metanets.batching import Budget, batch, budget_for, graph_mask, pad_features, unbatch
from gmn_jax.metanets.features import (LayerStatistics, fit_layer_statistics, mean_log_degree,
                                       standardize_per_layer)
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.inr_probes import LearnedProbes, siren_probe_values
from gmn_jax.metanets.metanetwork import Metanetwork
from gmn_jax.metanets.neural_graphs import NGGNN, NGT

__all__ = [
    'Budget', 'EdgeDeepSets', 'GMN', 'LayerStatistics', 'LearnedProbes', 'siren_probe_values', 'Metanetwork', 'NGGNN', 'NGT', 'StatNN',
    'WeightMLP', 'batch', 'budget_for', 'fit_layer_statistics', 'graph_mask', 'mean_log_degree',
    'pad_features', 'standardize_per_layer', 'unbatch',
]

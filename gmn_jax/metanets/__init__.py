"""Stage 2, metanetworks: `jraph.GraphsTuple` in, predictions (per graph, node or edge) out.

`batching` pads graphs to a fixed budget (one compilation per run); `features` encodes values,
types and positions; `aggregation` holds the masked segment reductions messages are passed
with; `readout` turns node and edge states into outputs; `metanetwork` is the base the models
share; `gmn` (GMN), `neural_graphs` (NG-GNN, NG-T), `scalegmn` (ScaleGMN, from the scale- and
sign-equivariant blocks of `scale_layers`), `baselines` (StatNN, the flat-weight MLP,
DeepSets over edges) and `sequence_baselines` (DMC, DeepSets over every scalar parameter) are
the models; `editing` turns them into weight editors (theta + s * delta); `sharded` splits one
large graph's edges over devices and `edge_chunks` scans them in blocks; `inr_probes` wraps one with learned probe coordinates run
through SIREN graphs. Reads `graphs` only (node and edge types).
"""

from gmn_jax.metanets.baselines import EdgeDeepSets, StatNN, WeightMLP
from gmn_jax.metanets.batching import Budget, batch, budget_for, graph_mask, pad_features, unbatch
from gmn_jax.metanets.edge_chunks import round_edges, scan_edge_blocks
from gmn_jax.metanets.editing import EditScales, Editor, FlatEditor, index_features
from gmn_jax.metanets.features import mean_log_degree
from gmn_jax.metanets.layer_statistics import (LayerStatistics, fit_layer_statistics,
                                               standardize_per_layer)
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.inr_probes import LearnedProbes, siren_probe_values
from gmn_jax.metanets.metanetwork import Metanetwork
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.metanets.readout import fit_readout_statistics
from gmn_jax.metanets.scalegmn import ScaleGMN, with_scaling_kinds
from gmn_jax.metanets.sequence_baselines import DMC, ParameterDeepSets, parameter_sequence
from gmn_jax.metanets.sharded import edge_shardings, shard_edges

__all__ = [
    'DMC', 'LearnedProbes', 'ParameterDeepSets', 'parameter_sequence', 'siren_probe_values',
    'Budget', 'EditScales', 'Editor', 'EdgeDeepSets', 'FlatEditor', 'GMN', 'LayerStatistics',
    'Metanetwork', 'NGGNN', 'NGT', 'ScaleGMN', 'StatNN', 'WeightMLP', 'batch', 'budget_for',
    'edge_shardings', 'fit_layer_statistics', 'fit_readout_statistics', 'graph_mask',
    'index_features', 'mean_log_degree', 'pad_features', 'round_edges', 'scan_edge_blocks',
    'shard_edges', 'standardize_per_layer', 'unbatch', 'with_scaling_kinds',
]

"""gmn_jax: graph metanetworks in JAX — neural networks that read other networks' weights.

The data flows through the sub-packages in order: `graphs` (a Flax model → its parameter graph)
→ `metanets` (graphs → predictions) → `zoos` (networks to read) → `training` (fit, predict,
metrics) → `tasks` (one experiment each); `io` holds checkpoints, graph files and drawings.
The names below are re-exported from them.
"""

from gmn_jax import graphs, io, metanets, tasks, training, zoos
from gmn_jax import testing  # pylint: disable=g-bad-import-order
from gmn_jax.graphs import (EdgeType, NodeType, ParameterGraph, Symmetry, UnsupportedModelError,
                            from_params, trace, trace_function)
from gmn_jax.io import convert_checkpoint, draw_graph, load_graphs, save_graphs
from gmn_jax.metanets import LearnedProbes
from gmn_jax.metanets import (GMN, NGGNN, NGT, Budget, EdgeDeepSets, LayerStatistics, Metanetwork,
                              StatNN, WeightMLP, batch, budget_for, fit_layer_statistics,
                              graph_mask, mean_log_degree, pad_features, standardize_per_layer,
                              unbatch)
from gmn_jax.tasks.generalization import GeneralizationConfig, train_and_evaluate
from gmn_jax.tasks.inr_classification import InrClassificationConfig
from gmn_jax.training import FitResult, GraphSet, TrainConfig, fit, predict
from gmn_jax.zoos import (InrZoo, InrZooConfig, Siren, generate_inr_zoo, load_inr_zoo)
from gmn_jax.zoos import (ImageDataset, SmallCNN, Zoo, ZooConfig, ZooError, generate_zoo,
                          load_dataset, load_zoo, read_small_cnn_zoo, write_small_cnn_zoo)

__all__ = [
    'graphs', 'io', 'metanets', 'tasks', 'testing', 'training', 'zoos',
    'FitResult', 'GeneralizationConfig', 'InrClassificationConfig', 'GraphSet', 'TrainConfig', 'fit', 'predict',
    'train_and_evaluate',
    'ImageDataset', 'SmallCNN', 'Zoo', 'ZooConfig', 'ZooError', 'generate_zoo', 'load_dataset',
    'load_zoo', 'read_small_cnn_zoo', 'write_small_cnn_zoo',
    'InrZoo', 'InrZooConfig', 'Siren', 'generate_inr_zoo', 'load_inr_zoo',
    'Budget', 'EdgeDeepSets', 'GMN', 'LayerStatistics', 'LearnedProbes', 'Metanetwork', 'NGGNN',
    'NGT', 'StatNN',
    'WeightMLP',
    'batch', 'budget_for', 'fit_layer_statistics', 'graph_mask', 'mean_log_degree',
    'pad_features', 'standardize_per_layer', 'unbatch',
    'EdgeType', 'NodeType', 'ParameterGraph', 'Symmetry', 'UnsupportedModelError',
    'from_params', 'trace', 'trace_function',
    'convert_checkpoint', 'draw_graph', 'load_graphs', 'save_graphs',
]

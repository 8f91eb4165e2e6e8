"""gmn_jax: graph metanetworks in JAX — neural networks that read other networks' weights."""

from gmn_jax._src.architecture import EdgeType, NodeType
from gmn_jax._src.from_params import from_params
from gmn_jax._src.graph import ParameterGraph
from gmn_jax._src.symmetry import Symmetry
from gmn_jax._src.trace import UnsupportedModelError, trace, trace_function
# Metanetworks and their data path.
from gmn_jax._src.baselines import EdgeDeepSets, StatNN, WeightMLP
from gmn_jax._src.batching import Budget, batch, budget_for, graph_mask, pad_features, unbatch
from gmn_jax._src.features import (LayerStatistics, fit_layer_statistics, mean_log_degree,
                                   standardize_per_layer)
from gmn_jax._src.gmn import GMN
from gmn_jax._src.metanetwork import Metanetwork
from gmn_jax._src.neural_graphs import NGGNN, NGT
# Checkpoints in, graph files and pictures out (`gmn-convert` is `gmn_jax.convert:main`).
from gmn_jax._src.convert import convert_checkpoint
from gmn_jax._src.draw import draw_graph
from gmn_jax._src.graph_io import load_graphs, save_graphs
from gmn_jax import testing  # pylint: disable=g-bad-import-order
# Zoos: generated (vmapped training), loaded, and the public Small CNN Zoo format.
from gmn_jax._src.datasets import ImageDataset, load_dataset
from gmn_jax._src.small_cnn_zoo import read_small_cnn_zoo, write_small_cnn_zoo
from gmn_jax._src.zoo import SmallCNN, Zoo, ZooConfig, ZooError, generate_zoo, load_zoo
# Training metanetworks, and the accuracy-prediction experiment.
from gmn_jax._src.generalization import GeneralizationConfig, train_and_evaluate
from gmn_jax._src.graph_set import GraphSet
from gmn_jax._src.training import FitResult, TrainConfig, fit, predict

__all__ = [
    'FitResult', 'GeneralizationConfig', 'GraphSet', 'TrainConfig', 'fit', 'predict',
    'train_and_evaluate',
    'ImageDataset', 'SmallCNN', 'Zoo', 'ZooConfig', 'ZooError', 'generate_zoo', 'load_dataset',
    'load_zoo', 'read_small_cnn_zoo', 'write_small_cnn_zoo',
    'Budget', 'EdgeDeepSets', 'GMN', 'LayerStatistics', 'Metanetwork', 'NGGNN', 'NGT', 'StatNN',
    'WeightMLP',
    'batch', 'budget_for', 'fit_layer_statistics', 'graph_mask', 'mean_log_degree',
    'pad_features', 'standardize_per_layer', 'testing', 'unbatch',
    'EdgeType', 'NodeType', 'ParameterGraph', 'Symmetry', 'UnsupportedModelError',
    'from_params', 'trace', 'trace_function',
    'convert_checkpoint', 'draw_graph', 'load_graphs', 'save_graphs',
]

"""gmn_jax: graph metanetworks in JAX — neural networks that read other networks' weights.

The data flows through the sub-packages in order: `graphs` (a Flax model → its parameter graph)
→ `metanets` (graphs → predictions) → `zoos` (networks to read) → `training` (fit, predict,
metrics) → `tasks` (one experiment each); `io` holds checkpoints, graph files and drawings.
The names below are re-exported from them; `train_and_evaluate` is the accuracy-prediction
task's (`gmn_jax.tasks.generalization`), each task has its own in `gmn_jax.tasks.<task>`.
"""

from gmn_jax._lazy import lazy_attributes

_SUBPACKAGES = ('graphs', 'io', 'mesh', 'metanets', 'tasks', 'training', 'zoos', 'testing')
# Where each public name lives; imported on first use (PEP 562), so that `import gmn_jax`
# and `gmn-convert --help` do not pay for jax, flax and optax until a name is used.
_PUBLIC = {name: module for module, names in {
    'gmn_jax.graphs': ('EdgeType', 'NodeType', 'ParameterGraph', 'Symmetry', 'SymmetryError',
                       'UnsupportedModelError', 'check_symmetries', 'from_params', 'trace',
                       'trace_function'),
    'gmn_jax.io': ('convert_checkpoint', 'draw_graph', 'load_graphs', 'save_graphs'),
    'gmn_jax.metanets': ('DMC', 'GMN', 'NGGNN', 'NGT', 'Budget', 'EdgeDeepSets', 'Editor',
                         'FlatEditor', 'LayerStatistics', 'LearnedProbes', 'Metanetwork',
                         'ParameterDeepSets', 'ScaleGMN', 'StatNN', 'WeightMLP', 'batch',
                         'budget_for', 'fit_layer_statistics', 'fit_readout_statistics',
                         'graph_mask', 'mean_log_degree',
                         'pad_features', 'round_edges', 'shard_edges', 'standardize_per_layer',
                         'unbatch', 'with_scaling_kinds'),
    'gmn_jax.mesh': ('initialize_distributed', 'make_mesh'),
    'gmn_jax.tasks': ('DiverseArchitecturesConfig', 'EditingConfig', 'GeneralizationConfig',
                      'InrClassificationConfig', 'LearningToOptimizeConfig'),
    # The accuracy-prediction task's driver; every task has its own,
    # `gmn_jax.tasks.<task>.train_and_evaluate`.
    'gmn_jax.tasks.generalization': ('train_and_evaluate',),
    'gmn_jax.training': ('FitResult', 'GraphRule', 'GraphSet', 'LearnedOptimizer',
                         'PerParameterLSTM', 'PerParameterMLP', 'TrainConfig', 'fit', 'predict'),
    'gmn_jax.zoos': ('DiverseNet', 'DiverseZoo', 'DiverseZooConfig', 'ImageDataset', 'InrZoo',
                     'InrZooConfig', 'NetSpec', 'PublishedInrs', 'Siren', 'SmallCNN', 'Zoo',
                     'ZooArchitecture', 'ZooConfig', 'ZooError', 'generate_diverse_zoo',
                     'generate_inr_zoo', 'generate_zoo', 'load_dataset', 'load_diverse_zoo',
                     'load_dwsnets_inrs', 'load_inr_zoo', 'load_nfn_sirens', 'load_zoo',
                     'read_torch_state_dict', 'read_small_cnn_zoo', 'write_small_cnn_zoo'),
}.items() for name in names}

__all__ = [
    'graphs', 'io', 'mesh', 'metanets', 'tasks', 'testing', 'training', 'zoos',
    'DiverseArchitecturesConfig', 'EditingConfig', 'FitResult', 'GeneralizationConfig',
    'GraphSet', 'InrClassificationConfig',
    'TrainConfig', 'fit', 'initialize_distributed', 'make_mesh', 'predict',
    'train_and_evaluate',
    'GraphRule', 'LearnedOptimizer', 'LearningToOptimizeConfig', 'PerParameterLSTM',
    'PerParameterMLP',
    'ImageDataset', 'SmallCNN', 'Zoo', 'ZooArchitecture', 'ZooConfig', 'ZooError',
    'generate_zoo', 'load_dataset', 'load_zoo', 'read_small_cnn_zoo', 'write_small_cnn_zoo',
    'InrZoo', 'InrZooConfig', 'Siren', 'generate_inr_zoo', 'load_inr_zoo',
    'PublishedInrs', 'load_dwsnets_inrs', 'load_nfn_sirens', 'read_torch_state_dict',
    'DiverseNet', 'DiverseZoo', 'DiverseZooConfig', 'NetSpec', 'generate_diverse_zoo',
    'load_diverse_zoo',
    'Budget', 'DMC', 'EdgeDeepSets', 'Editor', 'FlatEditor', 'GMN', 'LayerStatistics',
    'LearnedProbes',
    'Metanetwork', 'NGGNN', 'NGT', 'ParameterDeepSets', 'ScaleGMN', 'StatNN', 'WeightMLP',
    'batch', 'budget_for', 'fit_layer_statistics', 'fit_readout_statistics', 'graph_mask',
    'mean_log_degree', 'pad_features', 'round_edges', 'shard_edges', 'standardize_per_layer', 'unbatch',
    'with_scaling_kinds',
    'EdgeType', 'NodeType', 'ParameterGraph', 'Symmetry', 'SymmetryError',
    'UnsupportedModelError', 'check_symmetries', 'from_params', 'trace', 'trace_function',
    'convert_checkpoint', 'draw_graph', 'load_graphs', 'save_graphs',
]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _PUBLIC, _SUBPACKAGES)

"""gmn_jax: graph metanetworks in JAX — neural networks that read other networks' weights."""

from gmn_jax._src.architecture import EdgeType, NodeType
from gmn_jax._src.from_params import from_params
from gmn_jax._src.graph import ParameterGraph
from gmn_jax._src.symmetry import Symmetry
from gmn_jax._src.trace import UnsupportedModelError, trace, trace_function

__all__ = [
    'EdgeType', 'NodeType', 'ParameterGraph', 'Symmetry', 'UnsupportedModelError',
    'from_params', 'trace', 'trace_function',
]

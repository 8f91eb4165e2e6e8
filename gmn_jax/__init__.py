"""gmn_jax: graph metanetworks in JAX — neural networks that read other networks' weights."""

from gmn_jax._src.architecture import EdgeType, NodeType
from gmn_jax._src.graph import ParameterGraph
from gmn_jax._src.trace import UnsupportedModelError, trace

__all__ = ['EdgeType', 'NodeType', 'ParameterGraph', 'UnsupportedModelError', 'trace']

"""Stage 1, model → parameter graph: a Flax model (or a parameter pytree) in, a `ParameterGraph`
out, and with it `jraph.GraphsTuple` graphs of any parameters of that architecture and back.

`tracing/` reads the model's jaxpr into an `Architecture` (neuron groups, edges, per-neuron
parameters, symmetry constraints); `from_params` walks a plain Dense/Conv chain without model
code; `layout` decides where each parameter scalar becomes an edge entry or a node parameter;
`parameter_graph` holds the template with its jittable `encode`/`decode`; `probe` runs the
traced program on probe inputs; `symmetry` draws function-preserving neuron permutations (checked numerically by
`verify`) and
`scaling` the ReLU rescalings and tanh/sin sign flips. Nothing here imports a later stage.
"""

from gmn_jax.graphs import scaling
from gmn_jax.graphs.architecture import Architecture, EdgeType, NodeType
from gmn_jax.graphs.from_params import from_params
from gmn_jax.graphs.parameter_graph import ParameterGraph
from gmn_jax.graphs.symmetry import Symmetry, SymmetryError
from gmn_jax.graphs.tracing import UnsupportedModelError, trace, trace_function
from gmn_jax.graphs.verify import check_symmetries

__all__ = [
    'Architecture', 'EdgeType', 'NodeType', 'ParameterGraph', 'Symmetry', 'SymmetryError',
    'UnsupportedModelError', 'check_symmetries', 'from_params', 'scaling', 'trace', 'trace_function',
]

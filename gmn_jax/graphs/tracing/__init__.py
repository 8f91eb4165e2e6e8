"""Tracing a Flax model's jaxpr into an Architecture (`trace`, `trace_function`).

Host-side (numpy, data-dependent shapes, never under jit). Every value of the model's jaxpr is
interpreted as one of five kinds:

- `Const`: known numbers (literals, closed-over constants, `iota`), evaluated eagerly.
- `Param`: a function of the parameters alone. It carries, for each of its elements, the flat
  index of the parameter scalar it comes from (one index array per contributing leaf).
- `Data`: a function of the network input. It carries, for each element, the id of the neuron
  it belongs to (-1 when it belongs to none, e.g. a LayerNorm statistic), and the program of
  elementwise operations applied since that neuron group was made.
- `Index`: integer token ids derived from an integer input (what embeddings look up).
- `Table`: a constant read at rows chosen by an integer input (a rotary or sinusoidal table
  gathered by position ids); each element is keyed by the whole column it reads, so it tells
  neurons apart as a constant does, wherever the rows fall (`tables.py`).

Label arrays go through shape operations exactly as the values do, so reshapes, transposes,
flattening and head splits need no rules of their own. Contractions of `Data` with a `Param`
make a new neuron group and its edges; `Param` combined elementwise with `Data` attaches to the
neurons it meets (biases, scales, running statistics); two different neuron groups added or
multiplied make a residual join. A parameter used more than once gets one edge per use (see
`Architecture.tie_shared_uses`). Anything else, including a loop (`scan`) and any exception
inside a rule, is an error naming the primitive, the Flax
module path and the parameters involved.
"""

from gmn_jax.graphs.tracing.tracer import trace, trace_function
from gmn_jax.graphs.tracing.values import UnsupportedModelError

__all__ = ['UnsupportedModelError', 'trace', 'trace_function']

"""Files in and out, beside the flow of data: checkpoints (orbax, flax msgpack, transformers
model directories) to parameter graphs
(`convert_checkpoint`, the `gmn-convert` command in `cli`), graph files (`save_graphs`,
`load_graphs`) and pictures (`draw_graph`). Reads `graphs` and `metanets` (padding) only.

The names are imported on first use (PEP 562), so that the command line answers `--help`
without importing jax.
"""

from gmn_jax._lazy import lazy_attributes

_PUBLIC = {'convert_checkpoint': 'gmn_jax.io.convert', 'draw_graph': 'gmn_jax.io.draw',
           'load_graphs': 'gmn_jax.io.graph_files', 'save_graphs': 'gmn_jax.io.graph_files'}

__all__ = ['convert_checkpoint', 'draw_graph', 'load_graphs', 'save_graphs']


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _PUBLIC)

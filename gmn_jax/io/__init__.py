"""Files in and out, beside the flow of data: checkpoints (orbax, flax msgpack, transformers
model directories) to parameter graphs
(`convert_checkpoint`, the `gmn-convert` command in `cli`), graph files (`save_graphs`,
`load_graphs`) and pictures (`draw_graph`). Reads `graphs` and `metanets` (padding) only.
"""

from gmn_jax.io.convert import convert_checkpoint
from gmn_jax.io.draw import draw_graph
from gmn_jax.io.graph_files import load_graphs, save_graphs

__all__ = ['convert_checkpoint', 'draw_graph', 'load_graphs', 'save_graphs']

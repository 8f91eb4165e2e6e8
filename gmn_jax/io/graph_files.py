"""Parameter graphs on disk: one `.npz` file holding one or more graphs and the schema version.

Host-side (numpy); nothing here runs under jit.

File layout (a plain `numpy.savez_compressed` archive, readable without gmn_jax and without
pickle):

  schema_version   int64 []             `SCHEMA_VERSION`, the graph schema's version
  n_node, n_edge   int32 [n_graph]      nodes and edges of each graph
  senders          int32 [sum n_edge]   global node indices, as `jraph.batch` lays them out
  receivers        int32 [sum n_edge]
  nodes/<field>    [sum n_node, ...]    every `graph.nodes` field (type, layer, position, act,
                                        param, param_mask), graphs concatenated
  edges/<field>    [sum n_edge, ...]    every `graph.edges` field (type, weight, mask, op, act)
  globals/<field>  [n_graph, ...]       only when the graphs carry globals
  info             str []               JSON: schema_version, gmn_jax version, n_graph, steps
                                        (one per graph, or null), programs and ops (the text
                                        behind `edges['act']`/`edges['op']` ids), groups (the
                                        neuron groups: name, start, size, depth, kind) and
                                        free-form metadata (e.g. the checkpoint it came from)

Graphs of different architectures may share a file: `weight`/`mask` and `param`/`param_mask`
are padded to the widest K and P (masks False in the padding), as `gmn_jax.batch` does.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jraph
import numpy as np

from gmn_jax.metanets.batching import pad_features

# The version of the graph schema (`graphs/parameter_graph.py`, docs/parameter_graph.md).
# Bump it whenever a field is added, removed or changes meaning, so that old files fail
# loudly instead of loading wrongly.
SCHEMA_VERSION = 1


def _version() -> str:
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    return metadata.version('gmn-jax')
  except Exception:  # pylint: disable=broad-except
    return 'unknown'


def _single_graphs(graphs: Any) -> list[jraph.GraphsTuple]:
  """Graphs as a list of numpy GraphsTuples (each one graph or a jraph batch)."""
  items = [graphs] if isinstance(graphs, jraph.GraphsTuple) else list(graphs)
  if not items:
    raise ValueError('save_graphs needs at least one graph')
  out = []
  for g in items:
    if not isinstance(g, jraph.GraphsTuple):
      raise TypeError(f'save_graphs takes jraph.GraphsTuples, got {type(g).__name__}')
    g = jax.device_get(g)
    if np.ndim(g.n_node) == 2:  # stacked by jax.vmap(pg.encode): one graph per leading index
      out.extend(jax.tree_util.tree_map(lambda a, i=i: np.asarray(a)[i], g)
                 for i in range(np.shape(g.n_node)[0]))
    else:
      out.append(jax.tree_util.tree_map(np.asarray, g))
  return out


def file_mode() -> int:
  """The mode a new file gets from the process umask (0o644 under the usual 022)."""
  umask = os.umask(0o022)  # reading the umask means setting it; restored at once
  os.umask(umask)
  return 0o666 & ~umask


def _groups_of(pg: Any) -> list[dict[str, Any]] | None:
  if pg is None:
    return None
  return [dict(name=g.name, start=int(g.start), size=int(g.size), depth=int(g.depth),
               kind=int(g.kind)) for g in pg.architecture.groups]


def save_graphs(path: str | os.PathLike, graphs: Any, *, pg: Any = None,
                steps: Sequence[int] | None = None,
                metadata: Mapping[str, Any] | None = None) -> pathlib.Path:
  """Writes parameter graphs to one `.npz` file (layout in this module's docstring). Host-side.

  Args:
    path: the file to write (`.npz` is appended if missing; its folder is created if
      missing); written atomically, with the mode the umask gives new files.
    graphs: a `jraph.GraphsTuple` (one graph, a `jraph.batch` of graphs, or graphs stacked on
      a leading axis by `jax.vmap(pg.encode)`), or a sequence of these.
    pg: the `ParameterGraph` the graphs come from, if any: its programs, operations and neuron
      groups are stored so that the file can be read (and drawn) without the model.
    steps: one training step per graph (e.g. the checkpoints of a trajectory).
    metadata: JSON-serialisable extras (where the graphs came from).

  Returns:
    The path written.

  Raises:
    ValueError: no graphs, or `steps` of the wrong length.
  """
  items = _single_graphs(graphs)
  k = max(g.edges['weight'].shape[1] for g in items)
  p = max(g.nodes['param'].shape[1] for g in items)
  items = [pad_features(g, k, p) for g in items]
  items = [g._replace(n_node=np.asarray(g.n_node, np.int32).reshape(-1),
                      n_edge=np.asarray(g.n_edge, np.int32).reshape(-1),
                      senders=np.asarray(g.senders, np.int32),
                      receivers=np.asarray(g.receivers, np.int32)) for g in items]
  joined = jraph.batch_np(items) if len(items) > 1 else items[0]
  n_graph = len(joined.n_node)
  if steps is not None and len(steps) != n_graph:
    raise ValueError(f'save_graphs: {len(steps)} steps for {n_graph} graphs')
  info = {
      'schema_version': SCHEMA_VERSION,
      'gmn_jax_version': _version(),
      'n_graph': n_graph,
      'steps': None if steps is None else [int(s) for s in steps],
      'programs': {str(k): v for k, v in (pg.programs.items() if pg is not None else ())},
      'ops': {str(k): v for k, v in (pg.ops.items() if pg is not None else ())},
      'groups': _groups_of(pg),
      'metadata': dict(metadata or {}),
  }
  arrays = {'schema_version': np.array(SCHEMA_VERSION, np.int64),
            'n_node': joined.n_node, 'n_edge': joined.n_edge,
            'senders': joined.senders, 'receivers': joined.receivers,
            'info': np.array(json.dumps(info))}
  arrays.update({f'nodes/{k}': np.asarray(v) for k, v in joined.nodes.items()})
  arrays.update({f'edges/{k}': np.asarray(v) for k, v in joined.edges.items()})
  if joined.globals is not None:
    if isinstance(joined.globals, Mapping):
      arrays.update({f'globals/{k}': np.asarray(v) for k, v in joined.globals.items()})
    else:
      arrays['globals/'] = np.asarray(joined.globals)

  path = pathlib.Path(path)
  if path.suffix != '.npz':
    path = path.with_name(path.name + '.npz')
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(suffix='.npz', dir=path.parent)
  try:
    with os.fdopen(fd, 'wb') as f:
      np.savez_compressed(f, **arrays)
    os.chmod(tmp, file_mode())  # mkstemp's 0600 would hide the file from other users
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise
  return path


def load_graphs(path: str | os.PathLike, *, with_info: bool = False):
  """Reads the graphs written by `save_graphs` (or `gmn-convert`). Host-side.

  Args:
    path: the `.npz` file.
    with_info: also return the file's info dict.

  Returns:
    One `jraph.GraphsTuple` of numpy arrays holding every graph of the file, batched as
    `jraph.batch` does (`n_node`/`n_edge` are `[n_graph]`; `jraph.unbatch_np` splits it, and
    metanetworks take it as it is). With `with_info`, `(graphs, info)` where `info` holds
    `schema_version`, `gmn_jax_version`, `n_graph`, `steps`, `programs` and `ops` (int id ->
    text), `groups` (list of dicts: name, start, size, depth, kind; None if not saved) and
    `metadata`.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a graph file, or written with another schema version.
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f'no graph file at {path}')
  try:
    data = np.load(path, allow_pickle=False)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f'{path} is not a graph file written by gmn_jax.save_graphs: {e}') from e
  with data:
    if 'schema_version' not in data.files or 'info' not in data.files:
      raise ValueError(f'{path} is not a graph file written by gmn_jax.save_graphs (it has no '
                       'schema_version); convert the checkpoint again with gmn-convert.')
    version = int(data['schema_version'])
    if version != SCHEMA_VERSION:
      raise ValueError(
          f'{path} holds graphs of schema version {version}, but this gmn_jax reads version '
          f'{SCHEMA_VERSION}; convert the checkpoint again with this version, or install the '
          'gmn_jax version that wrote it.')
    arrays = {k: data[k] for k in data.files}
  info = json.loads(str(arrays.pop('info')))
  for key in ('programs', 'ops'):
    info[key] = {int(k): v for k, v in info[key].items()}
  fields = {'nodes': {}, 'edges': {}, 'globals': {}}
  for name, value in arrays.items():
    head, sep, field = name.partition('/')
    if sep:
      fields[head][field] = value
  glob = fields['globals']
  glob = glob.get('') if list(glob) == [''] else (glob or None)
  graphs = jraph.GraphsTuple(nodes=fields['nodes'], edges=fields['edges'],
                             senders=arrays['senders'], receivers=arrays['receivers'],
                             n_node=arrays['n_node'], n_edge=arrays['n_edge'], globals=glob)
  return (graphs, info) if with_info else graphs

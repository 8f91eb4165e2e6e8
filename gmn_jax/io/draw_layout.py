"""The pieces `draw_graph` is drawn with: node and edge styles, neuron groups and their labels,
layer columns, curved edges, the figure and its legend. Host-side (numpy, matplotlib)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from gmn_jax.graphs.architecture import EdgeType, NodeType

NODE_STYLE = {  # type: (marker, colour, legend label)
    NodeType.INPUT: ('s', '#2ca02c', 'input neuron'),
    NodeType.HIDDEN: ('o', '#4d4d4d', 'hidden neuron'),
    NodeType.OUTPUT: ('D', '#ff7f0e', 'output neuron'),
    NodeType.HEAD: ('^', '#9467bd', 'attention head'),
    NodeType.BLOCK: ('h', '#8c564b', 'norm group (block)'),
}
EDGE_STYLE = {  # type: (colour, line style, width, bend, legend label)
    EdgeType.RESIDUAL: ('#5f5f5f', (0, (4, 2)), 0.9, 0.18, 'residual (sum)'),
    EdgeType.RESIDUAL_NEG: ('#5f5f5f', (0, (4, 2, 1, 2)), 0.9, 0.18, 'residual (subtracted)'),
    EdgeType.PRODUCT: ('#bcbd22', (0, (1, 1.5)), 1.0, 0.18, 'product (gating)'),
    EdgeType.QUERY_KEY: ('#17becf', '-', 0.9, 0.35, 'query \u2013 key'),
    EdgeType.HEAD_QUERY: ('#9467bd', '-', 0.7, 0.0, 'query/key \u2192 head'),
    EdgeType.HEAD_KEY: ('#9467bd', '-', 0.7, 0.0, 'query/key \u2192 head'),
    EdgeType.HEAD_VALUE: ('#9467bd', (0, (2, 2)), 0.8, 0.25, 'head \u2192 value'),
    EdgeType.BLOCK: ('#8c564b', (0, (1, 1.5)), 0.8, 0.0, 'neuron \u2192 norm group'),
}
CMAP = 'RdBu_r'
LEGEND_WIDTH = 2.6  # inches kept right of the plot for the legend and colour bar


# ---- the graph and its groups ---------------------------------------------------------------


def one_graph(graph, index: int):
  """Graph `index` of a single graph, a `jraph.batch`, or a `jax.vmap(pg.encode)` stack."""
  graph = jax.device_get(graph)
  if np.ndim(graph.n_node) == 2:  # stacked by vmap: take one, then it is a single graph
    graph = jax.tree_util.tree_map(lambda a: np.asarray(a)[index], graph)
    index = 0
  n_node = np.asarray(graph.n_node).reshape(-1)
  n_edge = np.asarray(graph.n_edge).reshape(-1)
  if not 0 <= index < len(n_node):
    raise IndexError(f'graph index {index} out of range for a batch of {len(n_node)} graphs')
  n0, n1 = int(n_node[:index].sum()), int(n_node[:index + 1].sum())
  e0, e1 = int(n_edge[:index].sum()), int(n_edge[:index + 1].sum())
  nodes = {k: np.asarray(v)[n0:n1] for k, v in graph.nodes.items()}
  edges = {k: np.asarray(v)[e0:e1] for k, v in graph.edges.items()}
  return (nodes, edges, np.asarray(graph.senders)[e0:e1] - n0,
          np.asarray(graph.receivers)[e0:e1] - n0)


def neuron_groups(pg: Any, nodes: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
  """Neuron groups as dicts (name, start, size, depth, kind): from a ParameterGraph, a saved
  `groups` list, or, without either, runs of equal (layer, type) in node order."""
  n = len(nodes['type'])
  groups = None
  if pg is not None:
    source = pg.architecture.groups if hasattr(pg, 'architecture') else pg
    groups = [dict(name=g['name'], start=g['start'], size=g['size'], depth=g['depth'],
                   kind=g['kind']) if isinstance(g, Mapping) else
              dict(name=g.name, start=g.start, size=g.size, depth=g.depth, kind=int(g.kind))
              for g in source]
    if sum(g['size'] for g in groups) != n:
      groups = None  # not this graph's groups
  if groups is None:
    key = np.stack([nodes['layer'], nodes['type']], 1)
    starts = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]).any(1)]) if n else []
    groups = []
    for i, s in enumerate(starts):
      end = starts[i + 1] if i + 1 < len(starts) else n
      kind = int(nodes['type'][s])
      groups.append(dict(name=NodeType(kind).name.lower(), start=int(s), size=int(end - s),
                         depth=int(nodes['layer'][s]), kind=kind))
  return groups


def node_labels(groups: list[dict[str, Any]], nodes, edges, receivers) -> list[str]:
  """Short group names: the module path's last part, its parent when that is ambiguous."""
  group_of = np.repeat(np.arange(len(groups)), [g['size'] for g in groups])
  sums = set(group_of[receivers[edges['type'] == EdgeType.RESIDUAL]].tolist())
  has_output = set(group_of[nodes['type'] == NodeType.OUTPUT].tolist())
  parts = [g['name'].split('/') for g in groups]
  last = [p[-1] for p in parts]
  labels = []
  for i, g in enumerate(groups):
    if g['kind'] == NodeType.INPUT:
      text = 'input'
    elif g['kind'] == NodeType.HEAD:
      text = 'heads'
    elif g['kind'] == NodeType.BLOCK:
      text = 'norm groups'
    else:
      text = last[i] or NodeType(g['kind']).name.lower()  # nnx modules may leave no name
      if last.count(text) > 1 and len(parts[i]) > 2 and i not in sums:
        parent = parts[i][-2]
        parent = parent if len(parent) + len(text) < 26 else parent[:9] + '\u2026'
        text = f'{parent}/{text}'
      if i in sums:
        text = f'{text}: sum' if len(parts[i]) > 1 else 'sum'
    if len(text) > 28:
      text = text[:27] + '\u2026'
    labels.append(text)
  # Groups of one layer made in one module (a three-way sum done as two sums) would share a
  # name in one column: number them.
  keys = [(g['depth'], t) if g['kind'] in (NodeType.HIDDEN, NodeType.OUTPUT) else i
          for i, (g, t) in enumerate(zip(groups, labels))]
  for key in {k for k in keys if isinstance(k, tuple) and keys.count(k) > 1}:
    for n, i in enumerate(i for i, k in enumerate(keys) if k == key):
      labels[i] = f'{key[1]} {n + 1}'
  return [text + (' = output' if i in has_output and text != 'output' else '')
          + f' ({g["size"]})' for i, (g, text) in enumerate(zip(groups, labels))]


def wrap_label(text: str, width: int) -> str:
  """`text` on lines of at most `width` characters, broken after '/', '_' or ' ' where it
  can be (a module path has no spaces), the size in parentheses on a line of its own."""
  name, _, size = text.rpartition(' (') if text.endswith(')') else (text, '', '')
  pieces = re.findall(r'[^/_ ]*[/_ ]?', name)
  lines = ['']
  for piece in filter(None, pieces):
    while len(piece) > width:  # a single piece longer than a line: cut it
      lines += [piece[:width], '']
      piece = piece[width:]
    if len(lines[-1]) + len(piece.rstrip()) > width and lines[-1]:
      lines.append('')
    lines[-1] += piece
  lines = [l.strip() for l in lines if l.strip()]
  return '\n'.join(lines + ([f'({size}'] if size else []))


def edge_values(edges) -> np.ndarray:
  """One number per edge: the mean of its weight entries (conv kernels), 0 when it has none."""
  weight, mask = np.asarray(edges['weight'], np.float64), np.asarray(edges['mask'], bool)
  count = mask.sum(1)
  return np.where(count > 0, (weight * mask).sum(1) / np.maximum(count, 1), 0.0)


# ---- layout ---------------------------------------------------------------------------------


def layer_columns(groups, group_of, senders, receivers, edge_type):
  """Per group: its column (layer rank) plus a sub-column offset in [0, 0.4]."""
  layers = sorted({g['depth'] for g in groups})
  rank = {d: i for i, d in enumerate(layers)}
  sub = np.zeros(len(groups))
  within = (edge_type != EdgeType.QUERY_KEY) & (edge_type != EdgeType.HEAD_VALUE)
  pairs = {(int(a), int(b)) for a, b in zip(group_of[senders[within]], group_of[receivers[within]])
           if a != b and groups[a]['depth'] == groups[b]['depth']}
  for _ in range(len(groups)):  # longest path within a layer (few groups per layer)
    changed = False
    for a, b in pairs:
      if sub[b] < sub[a] + 1 and sub[a] + 1 < len(groups):
        sub[b], changed = sub[a] + 1, True
    if not changed:
      break
  depth_max = {}
  for i, g in enumerate(groups):
    depth_max[g['depth']] = max(depth_max.get(g['depth'], 0), sub[i])
  x = np.array([rank[g['depth']] + (0.4 * sub[i] / depth_max[g['depth']]
                                    if depth_max[g['depth']] else 0.0)
                for i, g in enumerate(groups)])
  return x, layers


def bezier(p0: np.ndarray, p1: np.ndarray, bend: np.ndarray, n: int = 16) -> np.ndarray:
  """[E, n, 2] quadratic Bezier curves from p0 to p1 bulging by `bend` x their length."""
  d = p1 - p0
  normal = np.stack([-d[:, 1], d[:, 0]], 1)
  control = (p0 + p1) / 2 + normal * bend[:, None]
  t = np.linspace(0, 1, n)[None, :, None]
  return ((1 - t) ** 2 * p0[:, None] + 2 * (1 - t) * t * control[:, None]
          + t ** 2 * p1[:, None])


def curved_segments(p0, p1, bend, scale):
  """Straight segments, or Bezier curves where `bend` is not zero (computed in inches so that
  the bulge looks the same in x and y)."""
  p0, p1 = p0 * scale, p1 * scale
  curved = bend != 0
  lines = [np.stack([a, b]) for a, b in zip(p0[~curved], p1[~curved])]
  if curved.any():
    lines += list(bezier(p0[curved], p1[curved], bend[curved]))
  order = np.r_[np.flatnonzero(~curved), np.flatnonzero(curved)]
  return [lines[i] / scale for i in np.argsort(order)]


# ---- drawing --------------------------------------------------------------------------------


def new_figure(ax, width: float, height: float):
  if ax is not None:
    return ax.figure, ax, False
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  try:
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    fig = plt.figure(figsize=(width + LEGEND_WIDTH, height))
  except ImportError:
    fig = Figure(figsize=(width + LEGEND_WIDTH, height))
  total = width + LEGEND_WIDTH
  ax = fig.add_axes((0.25 / total, 0.35 / height, (width - 0.4) / total, 1 - 0.85 / height))
  return fig, ax, True


def add_legend(fig, ax, handles, own: bool, width: float, height: float, title: str):
  handles = list({h.get_label(): h for h in handles}.values())
  if own:
    total = width + LEGEND_WIDTH
    fig.legend(handles=handles, loc='upper left', bbox_to_anchor=((width + 0.05) / total,
                                                                  1 - 0.45 / height),
               fontsize=8, frameon=False, title=title, title_fontsize=8, alignment='left')
  else:
    ax.legend(handles=handles, loc='upper left', bbox_to_anchor=(1.01, 1), fontsize=7,
              frameon=False, title=title, title_fontsize=7, alignment='left')

"""Pictures of parameter graphs with matplotlib: `draw_graph`.

Host-side (numpy and matplotlib; never under jit). Two pictures:

- *Neurons* (up to `max_nodes` nodes and `max_edges` edges): one column per layer
  (`nodes['layer']`), the neuron groups of a layer stacked in it in node order, hidden neurons
  in their stored order. A group that takes another group of its own layer as input (a residual
  sum after the block's last projection) sits a little to the right of it. Weight edges are
  coloured by their value on a diverging scale (a convolution edge by the mean of its kernel)
  and drawn thicker the larger they are; parameter-free edges (residual, attention structure,
  normalisation groups) have styles of their own and curve when they stay within a column or
  run backwards. Markers tell input, hidden, output, head and block nodes apart.
- *Groups* (larger graphs): one box per neuron group with its size, one arrow per pair of
  connected groups and edge type, its width growing with the number of edges. Drawing every
  edge of a large graph gives a hairball that says nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from gmn_jax._src.architecture import EdgeType, NodeType

_NODE_STYLE = {  # type: (marker, colour, legend label)
    NodeType.INPUT: ('s', '#2ca02c', 'input neuron'),
    NodeType.HIDDEN: ('o', '#4d4d4d', 'hidden neuron'),
    NodeType.OUTPUT: ('D', '#ff7f0e', 'output neuron'),
    NodeType.HEAD: ('^', '#9467bd', 'attention head'),
    NodeType.BLOCK: ('h', '#8c564b', 'norm group (block)'),
}
_EDGE_STYLE = {  # type: (colour, line style, width, bend, legend label)
    EdgeType.RESIDUAL: ('#5f5f5f', (0, (4, 2)), 0.9, 0.18, 'residual (sum)'),
    EdgeType.RESIDUAL_NEG: ('#5f5f5f', (0, (4, 2, 1, 2)), 0.9, 0.18, 'residual (subtracted)'),
    EdgeType.PRODUCT: ('#bcbd22', (0, (1, 1.5)), 1.0, 0.18, 'product (gating)'),
    EdgeType.QUERY_KEY: ('#17becf', '-', 0.9, 0.35, 'query \u2013 key'),
    EdgeType.HEAD_QUERY: ('#9467bd', '-', 0.7, 0.0, 'query/key \u2192 head'),
    EdgeType.HEAD_KEY: ('#9467bd', '-', 0.7, 0.0, 'query/key \u2192 head'),
    EdgeType.HEAD_VALUE: ('#9467bd', (0, (2, 2)), 0.8, 0.25, 'head \u2192 value'),
    EdgeType.BLOCK: ('#8c564b', (0, (1, 1.5)), 0.8, 0.0, 'neuron \u2192 norm group'),
}
_CMAP = 'RdBu_r'
_LEGEND_WIDTH = 2.6  # inches kept right of the plot for the legend and colour bar


# ---- the graph and its groups ---------------------------------------------------------------


def _one_graph(graph, index: int):
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


def _groups(pg: Any, nodes: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
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


def _labels(groups: list[dict[str, Any]], nodes, edges, receivers) -> list[str]:
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
    if i in has_output and text != 'output':
      text += ' = output'
    labels.append(f'{text} ({g["size"]})')
  return labels


def _edge_values(edges) -> np.ndarray:
  """One number per edge: the mean of its weight entries (conv kernels), 0 when it has none."""
  weight, mask = np.asarray(edges['weight'], np.float64), np.asarray(edges['mask'], bool)
  count = mask.sum(1)
  return np.where(count > 0, (weight * mask).sum(1) / np.maximum(count, 1), 0.0)


# ---- layout ---------------------------------------------------------------------------------


def _columns(groups, group_of, senders, receivers, edge_type):
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


def _bezier(p0: np.ndarray, p1: np.ndarray, bend: np.ndarray, n: int = 16) -> np.ndarray:
  """[E, n, 2] quadratic Bezier curves from p0 to p1 bulging by `bend` x their length."""
  d = p1 - p0
  normal = np.stack([-d[:, 1], d[:, 0]], 1)
  control = (p0 + p1) / 2 + normal * bend[:, None]
  t = np.linspace(0, 1, n)[None, :, None]
  return ((1 - t) ** 2 * p0[:, None] + 2 * (1 - t) * t * control[:, None]
          + t ** 2 * p1[:, None])


def _segments(p0, p1, bend, scale):
  """Straight segments, or Bezier curves where `bend` is not zero (computed in inches so that
  the bulge looks the same in x and y)."""
  p0, p1 = p0 * scale, p1 * scale
  curved = bend != 0
  lines = [np.stack([a, b]) for a, b in zip(p0[~curved], p1[~curved])]
  if curved.any():
    lines += list(_bezier(p0[curved], p1[curved], bend[curved]))
  order = np.r_[np.flatnonzero(~curved), np.flatnonzero(curved)]
  return [lines[i] / scale for i in np.argsort(order)]


# ---- drawing --------------------------------------------------------------------------------


def _figure(ax, width: float, height: float):
  if ax is not None:
    return ax.figure, ax, False
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  try:
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
    fig = plt.figure(figsize=(width + _LEGEND_WIDTH, height))
  except ImportError:
    fig = Figure(figsize=(width + _LEGEND_WIDTH, height))
  total = width + _LEGEND_WIDTH
  ax = fig.add_axes((0.25 / total, 0.35 / height, (width - 0.4) / total, 1 - 0.85 / height))
  return fig, ax, True


def _legend(fig, ax, handles, own: bool, width: float, height: float, title: str):
  handles = list({h.get_label(): h for h in handles}.values())
  if own:
    total = width + _LEGEND_WIDTH
    fig.legend(handles=handles, loc='upper left', bbox_to_anchor=((width + 0.05) / total,
                                                                  1 - 0.45 / height),
               fontsize=8, frameon=False, title=title, title_fontsize=8, alignment='left')
  else:
    ax.legend(handles=handles, loc='upper left', bbox_to_anchor=(1.01, 1), fontsize=7,
              frameon=False, title=title, title_fontsize=7, alignment='left')


def _draw_neurons(nodes, edges, senders, receivers, groups, ax, title, weight_scale,
                  max_weight_edges):
  from matplotlib.collections import LineCollection  # pylint: disable=g-import-not-at-top
  from matplotlib.colors import Normalize  # pylint: disable=g-import-not-at-top
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  n = len(nodes['type'])
  group_of = np.repeat(np.arange(len(groups)), [g['size'] for g in groups])
  edge_type = np.asarray(edges['type'])
  gx, layers = _columns(groups, group_of, senders, receivers, edge_type)

  # Slots down each column: the groups of a column in node order, a gap between groups that
  # leaves room for the group's label (about 0.3 inch whatever the slot height).
  tallest_column = max(int(np.sum([g['size'] for g, c in zip(groups, np.round(gx)) if c == k]))
                       for k in np.unique(np.round(gx)))
  slot = float(np.clip(11.0 / max(tallest_column, 1), 0.055, 0.3))  # inches per neuron
  gap = max(1.6, 0.34 / slot)
  column_of = np.round(gx).astype(int)
  slots, height_of = np.zeros(n), {}
  for c in np.unique(column_of):
    y = 0.0
    for i in np.flatnonzero(column_of == c):
      g = groups[i]
      slots[g['start']:g['start'] + g['size']] = y + np.arange(g['size'])
      y += g['size'] - 1 + gap
    height_of[c] = y - gap
  tallest = max(height_of.values()) if height_of else 0.0
  for c, h in height_of.items():  # centre each column
    slots[column_of[group_of] == c] += (tallest - h) / 2
  x = gx[group_of]
  y = -slots
  n_col = len(layers)
  width = float(np.clip(1.9 * n_col + 0.6, 5.0, 26.0))
  height = float(np.clip(slot * (tallest + 2 * gap) + 1.0, 3.0, 18.0))
  # Room on the right for the legend (one line per node and edge kind) above the colour bar.
  entries = len(np.unique(nodes['type'])) + len({_EDGE_STYLE[EdgeType(t)][4] for t in
                                                 np.unique(edges['type']) if t in _EDGE_STYLE})
  height = max(height, 0.2 * (entries + 1) + 2.4)
  fig, ax, own = _figure(ax, width, height)
  scale = np.array([width / max(n_col, 1), height / max(tallest + 2 * gap, 1)])

  handles = []
  p0 = np.stack([x[senders], y[senders]], 1)
  p1 = np.stack([x[receivers], y[receivers]], 1)
  values = _edge_values(edges)
  is_weight = edge_type == EdgeType.WEIGHT
  if weight_scale == 'layer':  # each operation's weights on their own scale
    block = group_of[receivers] * 1_000_003 + np.asarray(edges['op']) % 1_000_003
    for b in np.unique(block[is_weight]):
      m = is_weight & (block == b)
      values[m] /= float(np.percentile(np.abs(values[m]), 98)) or 1.0
    vmax, bar_label = 1.0, 'weight \u00f7 layer scale\n(conv: kernel mean)'
  elif weight_scale == 'global':
    vmax = float(np.percentile(np.abs(values[is_weight]), 98)) if is_weight.any() else 1.0
    vmax, bar_label = vmax or 1.0, 'weight\n(conv: kernel mean)'
  else:
    raise ValueError(f"weight_scale must be 'layer' or 'global', not {weight_scale!r}")
  norm = Normalize(-vmax, vmax)
  if is_weight.any():
    from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
    idx = np.flatnonzero(is_weight)
    idx = idx[np.argsort(np.abs(values[idx]))]  # strong weights on top
    if idx.size > max_weight_edges:  # the strongest only: the rest would be a grey haze
      idx = idx[-max_weight_edges:]
      title = (f'{title}\n(the {max_weight_edges:,} strongest of {int(is_weight.sum()):,} '
               'weight edges drawn)')
    strength = np.clip(np.abs(values[idx]) / vmax, 0, 1)
    # The more edges, the fainter the weak ones, so that the strong ones stand out.
    density = float(np.clip(400.0 / idx.size, 0.04, 1.0))
    colours = colormaps[_CMAP](norm(values[idx]))
    colours[:, 3] = 0.35 * density + (0.95 - 0.35 * density) * strength ** 2
    # Weights between groups of one column (rare) curve so they do not run along it.
    same = np.abs(p0[idx, 0] - p1[idx, 0]) < 1e-9
    lines = _segments(p0[idx], p1[idx], np.where(same, 0.3, 0.0), scale)
    ax.add_collection(LineCollection(lines, colors=colours, linewidths=0.2 + 1.5 * strength
                                     * max(density, 0.35), zorder=1, capstyle='round'))
  for kind, (colour, style, lw, bend, label) in _EDGE_STYLE.items():
    idx = np.flatnonzero(edge_type == kind)
    if not idx.size:
      continue
    same = np.abs(p0[idx, 0] - p1[idx, 0]) < 1e-9
    back = p1[idx, 0] < p0[idx, 0] - 1e-9
    bends = np.where(same | back, max(bend, 0.3), bend)
    lines = _segments(p0[idx], p1[idx], bends, scale)
    ax.add_collection(LineCollection(lines, colors=colour, linestyles=[style], linewidths=lw,
                                     alpha=0.85, zorder=2))
    handles.append(Line2D([], [], color=colour, linestyle=style, lw=1.4, label=label))

  size = float(np.clip((72 * slot * 0.75) ** 2, 6.0, 80.0))  # marker area in points^2
  node_type = np.asarray(nodes['type'])
  node_handles = []
  for kind, (marker, colour, label) in _NODE_STYLE.items():
    m = node_type == kind
    if m.any():
      ax.scatter(x[m], y[m], s=size, marker=marker, c=colour, edgecolors='white',
                 linewidths=0.4, zorder=3)
      node_handles.append(Line2D([], [], marker=marker, color=colour, linestyle='',
                                 markersize=7, label=label))

  fontsize = 7 if slot < 0.1 else 8
  for i, (g, label) in enumerate(zip(groups, _labels(groups, nodes, edges, receivers))):
    top = y[g['start']]
    ax.text(gx[i], top + 0.1 / slot, label, ha='center', va='bottom',
            fontsize=fontsize, zorder=4, color='#222222',
            bbox=dict(boxstyle='round,pad=0.15', fc='white', ec='none', alpha=0.8))
  for c, depth in enumerate(layers):
    ax.text(c, -tallest - 0.12 / slot, f'layer {depth}', ha='center', va='top', fontsize=8,
            color='#555555')
  ax.set_xlim(-0.55, n_col - 1 + 0.7)
  ax.set_ylim(-tallest - gap, gap)
  ax.axis('off')
  if title:
    ax.set_title(title, fontsize=10, loc='left')
  _legend(fig, ax, node_handles + handles, own, width, height, 'nodes and edges')
  if is_weight.any():
    from matplotlib.cm import ScalarMappable  # pylint: disable=g-import-not-at-top
    mappable = ScalarMappable(norm=norm, cmap=_CMAP)
    if own:
      total = width + _LEGEND_WIDTH
      cax = fig.add_axes(((width + 0.25) / total, 0.4 / height, 0.14 / total, 1.2 / height))
      bar = fig.colorbar(mappable, cax=cax, extend='both')
      cax.set_title(bar_label, fontsize=7, loc='left', pad=8)
    else:  # below the axes, so that it does not cover the legend on the right
      bar = fig.colorbar(mappable, ax=ax, orientation='horizontal', fraction=0.035, pad=0.02,
                         shrink=0.4, anchor=(1.0, 1.0), extend='both')
      bar.set_label(bar_label.replace('\n', ' '), fontsize=7)
    from matplotlib.ticker import MaxNLocator  # pylint: disable=g-import-not-at-top
    ticks = MaxNLocator(4, symmetric=True).tick_values(-vmax, vmax)
    bar.set_ticks(ticks[np.abs(ticks) <= vmax * (1 + 1e-9)])
    bar.ax.tick_params(labelsize=7)
  return fig


def _draw_groups(nodes, edges, senders, receivers, groups, ax, title, max_boxes: int):
  """One box per group (or per layer and node type when there are too many groups)."""
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # pylint: disable=g-import-not-at-top
  labels = _labels(groups, nodes, edges, receivers)
  if len(groups) > max_boxes:  # merge the groups of each (layer, kind)
    merged: dict[tuple[int, int], dict[str, Any]] = {}
    for g in groups:
      m = merged.setdefault((g['depth'], g['kind']), dict(name=NodeType(g['kind']).name.lower(),
                                                          depth=g['depth'], kind=g['kind'],
                                                          size=0, members=0))
      m['size'] += g['size']
      m['members'] += 1
    unit_of_group = [list(merged).index((g['depth'], g['kind'])) for g in groups]
    units = list(merged.values())
    labels = [f'{u["members"]} {u["name"]} group{"s" * (u["members"] > 1)} ({u["size"]})'
              for u in units]
  else:
    unit_of_group = list(range(len(groups)))
    units = groups
  group_of = np.repeat(np.arange(len(groups)), [g['size'] for g in groups])
  unit_of = np.asarray(unit_of_group)[group_of]
  edge_type = np.asarray(edges['type'])
  layers = sorted({u['depth'] for u in units})
  rank = {d: i for i, d in enumerate(layers)}
  column = np.array([rank[u['depth']] for u in units])
  heights = np.array([0.8 + 0.35 * np.log10(max(u['size'], 1)) for u in units])
  ypos = np.zeros(len(units))
  tallest = 0.0
  for c in np.unique(column):
    idx = np.flatnonzero(column == c)
    total = heights[idx].sum() + 0.5 * (len(idx) - 1)
    tops = np.cumsum(np.r_[0, heights[idx][:-1] + 0.5])
    ypos[idx] = -(tops + heights[idx] / 2) + total / 2
    tallest = max(tallest, total)
  n_col = len(layers)
  width = float(np.clip(1.45 * n_col + 0.6, 5.0, 36.0))
  height = float(np.clip(0.75 * tallest + 1.6, 3.6, 20.0))
  fig, ax, own = _figure(ax, width, height)
  box_w = 0.62
  for i, u in enumerate(units):
    marker, colour, _ = _NODE_STYLE[NodeType(u['kind'])]
    del marker
    ax.add_patch(FancyBboxPatch((column[i] - box_w / 2, ypos[i] - heights[i] / 2), box_w,
                                heights[i], boxstyle='round,pad=0.02', fc=colour, alpha=0.18,
                                ec=colour, lw=1.0, zorder=3))
    ax.text(column[i], ypos[i], labels[i].replace(' (', '\n('), ha='center', va='center',
            fontsize=7, zorder=4)
  pairs: dict[tuple[int, int, int], int] = {}
  for a, b, t in zip(unit_of[senders], unit_of[receivers], edge_type):
    if a != b:
      pairs[(int(a), int(b), int(t))] = pairs.get((int(a), int(b), int(t)), 0) + 1
  handles = []
  for (a, b, t), count in pairs.items():
    colour, style, _, _, label = _EDGE_STYLE.get(
        EdgeType(t), ('#3b6ea8', '-', 1.0, 0.0, 'weights'))
    start = (column[a] + box_w / 2 * np.sign(column[b] - column[a]), ypos[a])
    end = (column[b] - box_w / 2 * np.sign(column[b] - column[a]), ypos[b])
    # Weights go straight to the next layer; anything else bows below the row it skips.
    rad = 0.0 if column[b] > column[a] and t == EdgeType.WEIGHT else 0.3
    if column[a] == column[b]:
      start, end, rad = (column[a] - box_w / 2, ypos[a]), (column[b] - box_w / 2, ypos[b]), 0.6
    ax.add_patch(FancyArrowPatch(start, end, connectionstyle=f'arc3,rad={rad}',
                                 arrowstyle='-|>', mutation_scale=8, color=colour,
                                 linestyle=style, lw=0.6 + 0.9 * np.log10(count), alpha=0.8,
                                 zorder=2))
    if len(pairs) <= 80 and rad == 0.0:
      ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, f'{count:,}', fontsize=6,
              ha='center', va='center', color=colour, zorder=4,
              bbox=dict(boxstyle='round,pad=0.1', fc='white', ec='none', alpha=0.85))
    handles.append(Line2D([], [], color=colour, linestyle=style, lw=1.4, label=label))
  for c, depth in enumerate(layers):
    ax.text(c, -tallest / 2 - 0.5, f'layer {depth}', ha='center', va='top', fontsize=8,
            color='#555555')
  ax.set_xlim(-0.6, n_col - 0.4)
  ax.set_ylim(-tallest / 2 - 1.2, tallest / 2 + 0.4)
  ax.axis('off')
  ax.set_title(title, fontsize=10, loc='left')
  _legend(fig, ax, handles, own, width, height, 'arrows (width, number: edges)')
  return fig


def draw_graph(graph, pg: Any = None, *, index: int = 0, ax=None,
               path: str | os.PathLike | None = None, title: str | None = None,
               max_nodes: int = 400, max_edges: int = 20_000, summary: bool | None = None,
               max_boxes: int = 120, weight_scale: str = 'layer',
               max_weight_edges: int = 4000):
  """Draws a parameter graph as a layered picture (see this module's docstring). Host-side.

  Args:
    graph: a `jraph.GraphsTuple` from `pg.encode`, `jraph.batch`/`gmn_jax.batch`,
      `jax.vmap(pg.encode)` or `gmn_jax.load_graphs`.
    pg: the `ParameterGraph` it comes from, or the `groups` list that `load_graphs(...,
      with_info=True)` returns, for group names; without it groups are runs of nodes with the
      same layer and type.
    index: which graph of a batch to draw.
    ax: a matplotlib Axes to draw into (default: a new figure with legend and colour bar).
    path: also save the figure there (PNG, PDF, SVG) and close it.
    title: the figure title (default: the graph's sizes).
    max_nodes, max_edges: above either, draw groups instead of neurons.
    summary: force the group picture (True) or the neuron picture (False).
    max_boxes: in the group picture, merge the groups of each layer and node type when there
      are more groups than this.
    max_weight_edges: in the neuron picture, draw only this many weight edges, the largest
      (relative to their layer's scale).
    weight_scale: 'layer' colours each operation's weights relative to their own scale (98th
      percentile of |w|), so that small kernels and large dense weights both show; 'global'
      uses one scale for the whole graph (compare values across layers).

  Returns:
    The matplotlib Figure.
  """
  nodes, edges, senders, receivers = _one_graph(graph, index)
  groups = _groups(pg, nodes)
  n_node, n_edge = len(nodes['type']), len(senders)
  n_params = int(np.asarray(edges['mask']).sum() + np.asarray(nodes['param_mask']).sum())
  if summary is None:
    summary = n_node > max_nodes or n_edge > max_edges
  default_title = f'{n_node} neurons, {n_edge} edges, {n_params} parameters'
  if summary:
    default_title += f' (summarised: {len(groups)} groups)'
    fig = _draw_groups(nodes, edges, senders, receivers, groups, ax,
                       title if title is not None else default_title, max_boxes)
  else:
    fig = _draw_neurons(nodes, edges, senders, receivers, groups, ax,
                        title if title is not None else default_title, weight_scale,
                        max_weight_edges)
  if path is not None:
    fig.savefig(path, dpi=150, bbox_inches='tight')
    try:
      import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
      plt.close(fig)
    except ImportError:
      pass
  return fig


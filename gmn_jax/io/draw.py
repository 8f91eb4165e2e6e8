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
from typing import Any

import numpy as np

from gmn_jax.graphs.architecture import EdgeType, NodeType
from gmn_jax.io.draw_layout import (CMAP, EDGE_STYLE, LEGEND_WIDTH, NODE_STYLE, add_legend,
                                    curved_segments, edge_values, layer_columns, neuron_groups,
                                    new_figure, node_labels, one_graph, wrap_label)


def _draw_neurons(nodes, edges, senders, receivers, groups, ax, title, weight_scale,
                  max_weight_edges):
  from matplotlib.collections import LineCollection  # pylint: disable=g-import-not-at-top
  from matplotlib.colors import Normalize  # pylint: disable=g-import-not-at-top
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  n = len(nodes['type'])
  group_of = np.repeat(np.arange(len(groups)), [g['size'] for g in groups])
  edge_type = np.asarray(edges['type'])
  gx, layers = layer_columns(groups, group_of, senders, receivers, edge_type)

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
  entries = len(np.unique(nodes['type'])) + len({EDGE_STYLE[EdgeType(t)][4] for t in
                                                 np.unique(edges['type']) if t in EDGE_STYLE})
  height = max(height, 0.2 * (entries + 1) + 2.4)
  fig, ax, own = new_figure(ax, width, height)
  scale = np.array([width / max(n_col, 1), height / max(tallest + 2 * gap, 1)])

  handles = []
  p0 = np.stack([x[senders], y[senders]], 1)
  p1 = np.stack([x[receivers], y[receivers]], 1)
  values = edge_values(edges)
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
    colours = colormaps[CMAP](norm(values[idx]))
    colours[:, 3] = 0.35 * density + (0.95 - 0.35 * density) * strength ** 2
    # Weights between groups of one column (rare) curve so they do not run along it.
    same = np.abs(p0[idx, 0] - p1[idx, 0]) < 1e-9
    lines = curved_segments(p0[idx], p1[idx], np.where(same, 0.3, 0.0), scale)
    ax.add_collection(LineCollection(lines, colors=colours, linewidths=0.2 + 1.5 * strength
                                     * max(density, 0.35), zorder=1, capstyle='round'))
  for kind, (colour, style, lw, bend, label) in EDGE_STYLE.items():
    idx = np.flatnonzero(edge_type == kind)
    if not idx.size:
      continue
    same = np.abs(p0[idx, 0] - p1[idx, 0]) < 1e-9
    back = p1[idx, 0] < p0[idx, 0] - 1e-9
    bends = np.where(same | back, max(bend, 0.3), bend)
    lines = curved_segments(p0[idx], p1[idx], bends, scale)
    ax.add_collection(LineCollection(lines, colors=colour, linestyles=[style], linewidths=lw,
                                     alpha=0.85, zorder=2))
    handles.append(Line2D([], [], color=colour, linestyle=style, lw=1.4, label=label))

  size = float(np.clip((72 * slot * 0.75) ** 2, 6.0, 80.0))  # marker area in points^2
  node_type = np.asarray(nodes['type'])
  node_handles = []
  for kind, (marker, colour, label) in NODE_STYLE.items():
    m = node_type == kind
    if m.any():
      ax.scatter(x[m], y[m], s=size, marker=marker, c=colour, edgecolors='white',
                 linewidths=0.4, zorder=3)
      node_handles.append(Line2D([], [], marker=marker, color=colour, linestyle='',
                                 markersize=7, label=label))

  fontsize = 7 if slot < 0.1 else 8
  for i, (g, label) in enumerate(zip(groups, node_labels(groups, nodes, edges, receivers))):
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
  add_legend(fig, ax, node_handles + handles, own, width, height, 'nodes and edges')
  if is_weight.any():
    from matplotlib.cm import ScalarMappable  # pylint: disable=g-import-not-at-top
    mappable = ScalarMappable(norm=norm, cmap=CMAP)
    if own:
      total = width + LEGEND_WIDTH
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
  labels = node_labels(groups, nodes, edges, receivers)
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
  fig, ax, own = new_figure(ax, width, height)
  box_w = 0.62
  for i, u in enumerate(units):
    marker, colour, _ = NODE_STYLE[NodeType(u['kind'])]
    del marker
    ax.add_patch(FancyBboxPatch((column[i] - box_w / 2, ypos[i] - heights[i] / 2), box_w,
                                heights[i], boxstyle='round,pad=0.02', fc=colour, alpha=0.18,
                                ec=colour, lw=1.0, zorder=3))
    ax.text(column[i], ypos[i], wrap_label(labels[i], 13), ha='center', va='center',
            fontsize=7, zorder=4)  # 13 characters of 7 pt fit the box's width
  pairs: dict[tuple[int, int, int], int] = {}
  for a, b, t in zip(unit_of[senders], unit_of[receivers], edge_type):
    if a != b:
      pairs[(int(a), int(b), int(t))] = pairs.get((int(a), int(b), int(t)), 0) + 1
  handles = []
  for (a, b, t), count in pairs.items():
    colour, style, _, _, label = EDGE_STYLE.get(
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
  add_legend(fig, ax, handles, own, width, height, 'arrows (width, number: edges)')
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
      percentile of `|w|`), so that small kernels and large dense weights both show; 'global'
      uses one scale for the whole graph (compare values across layers).

  Returns:
    The matplotlib Figure.
  """
  nodes, edges, senders, receivers = one_graph(graph, index)
  groups = neuron_groups(pg, nodes)
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


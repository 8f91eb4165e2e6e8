"""`gmn_jax.draw_graph`: layered pictures of parameter graphs.

Corner cases: a Dense chain (``mlp``), attention heads with Q-K, head and residual edges
(``vit``), normalisation blocks (``cnn_gn``), residual sums and a projection shortcut
(``resnet``), one graph out of a batch of two architectures, a graph read back from a file
(groups from the file's info), a graph without any group information, and a graph too large to
draw neuron by neuron (summarised as groups).
"""

from __future__ import annotations

import itertools

import jax
import jraph
import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.patches import FancyBboxPatch

import gmn_jax
from gmn_jax.io import draw_layout

matplotlib.use('Agg')


def _texts(fig):
  return [t.get_text() for ax in fig.axes for t in ax.texts]


def _legend_labels(fig):
  legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
  return {t.get_text() for legend in legends for t in legend.get_texts()}


def _assert_labels_do_not_overlap(fig):
  canvas = FigureCanvasAgg(fig)  # a closed figure has lost its pyplot canvas
  canvas.draw()
  renderer = canvas.get_renderer()
  boxes = [(t.get_text(), t.get_window_extent(renderer)) for ax in fig.axes for t in ax.texts
           if t.get_text()]
  for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
    assert not box_a.shrunk(0.95, 0.9).overlaps(box_b.shrunk(0.95, 0.9)), (a, b)


@pytest.mark.parametrize('name, labels, legend', [
    ('mlp', ['input (3)', 'Dense_0 (5)', 'Dense_2 = output (2)'],
     {'input neuron', 'hidden neuron', 'output neuron'}),
    ('vit', ['query (8)', 'key (8)', 'value (8)', 'heads (2)', 'TransformerBlock_0: sum (8)'],
     {'attention head', 'query \u2013 key', 'query/key \u2192 head', 'head \u2192 value',
      'residual (sum)'}),
    ('cnn_gn', ['norm groups (2)', 'Conv_0 (4)'], {'norm group (block)',
                                                    'neuron \u2192 norm group'}),
    ('resnet', ['proj_conv (6)', 'BasicBlock_1: sum (6)', 'BasicBlock_0/Conv_0 (4)'],
     {'residual (sum)'}),
])
def test_neuron_picture(traced, name, labels, legend, tmp_path):
  pg, variables, _ = traced(name)
  graph = pg.encode(variables)
  path = tmp_path / f'{name}.png'
  fig = gmn_jax.draw_graph(graph, pg, path=path)
  assert path.stat().st_size > 10_000
  texts = _texts(fig)
  for label in labels:
    assert label in texts, texts
  assert legend <= _legend_labels(fig), _legend_labels(fig)
  assert f'{pg.n_node} neurons, {pg.n_edge} edges, {pg.n_params} parameters' in \
      fig.axes[0].get_title(loc='left')
  # Every edge is drawn exactly once (few enough weights here to draw them all).
  drawn = sum(len(c.get_segments()) for c in fig.axes[0].collections
              if isinstance(c, LineCollection))
  assert drawn == pg.n_edge
  _assert_labels_do_not_overlap(fig)


def test_conv_edges_are_coloured_by_the_mean_of_their_kernel(traced):
  pg, variables, _ = traced('cnn_gap')
  graph = pg.encode(variables)
  values = draw_layout.edge_values(graph.edges)
  kernel = np.asarray(variables['params']['Conv_0']['kernel'])  # [3, 3, in, out]
  means = kernel.mean(axis=(0, 1))
  senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
  first = np.flatnonzero((senders < 2) & np.asarray(graph.edges['mask']).any(1))
  got = {(int(senders[e]), int(receivers[e]) - 2): values[e] for e in first}
  for (i, j), value in got.items():
    np.testing.assert_allclose(value, means[i, j], rtol=1e-5)


def test_global_scale_and_bad_scale(traced):
  pg, variables, _ = traced('mlp')
  fig = gmn_jax.draw_graph(pg.encode(variables), pg, weight_scale='global')
  assert any(ax.get_title(loc='left').startswith('weight\n') for ax in fig.axes)
  with pytest.raises(ValueError, match='weight_scale'):
    gmn_jax.draw_graph(pg.encode(variables), pg, weight_scale='per-edge')


def test_one_graph_of_a_batch_and_of_a_file(traced, tmp_path):
  pg_a, v_a, _ = traced('mlp')
  pg_b, v_b, _ = traced('cnn_gn')
  batch = gmn_jax.batch([pg_a.encode(v_a), pg_b.encode(v_b)])
  fig = gmn_jax.draw_graph(batch, pg_b, index=1)
  assert fig.axes[0].get_title(loc='left').startswith(f'{pg_b.n_node} neurons')
  assert 'norm groups (2)' in _texts(fig)
  with pytest.raises(IndexError):
    gmn_jax.draw_graph(jraph.batch([pg_a.encode(v_a)]), index=3)
  stacked = jax.vmap(pg_a.encode)(jax.tree_util.tree_map(lambda a: np.stack([a, -a]), v_a))
  second = gmn_jax.draw_graph(stacked, pg_a, index=1)
  assert second.axes[0].get_title(loc='left').startswith(f'{pg_a.n_node} neurons')

  path = gmn_jax.save_graphs(tmp_path / 'g.npz', pg_b.encode(v_b), pg=pg_b)
  graphs, info = gmn_jax.load_graphs(path, with_info=True)
  from_file = gmn_jax.draw_graph(graphs, info['groups'])
  assert sorted(_texts(from_file)) == sorted(_texts(gmn_jax.draw_graph(pg_b.encode(v_b), pg_b)))
  # Without groups: runs of nodes of one layer and type, named by their type.
  bare = gmn_jax.draw_graph(graphs)
  assert 'input (2)' in _texts(bare) and 'output (3)' in _texts(bare)


def test_large_graphs_are_summarised_by_group(traced, tmp_path):
  pg, variables, _ = traced('resnet')
  graph = pg.encode(variables)
  path = tmp_path / 'summary.png'
  fig = gmn_jax.draw_graph(graph, pg, max_nodes=20, path=path)
  assert path.stat().st_size > 10_000
  ax = fig.axes[0]
  assert 'summarised' in ax.get_title(loc='left')
  boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
  assert len(boxes) == len(pg.architecture.groups)
  assert any('proj_conv\n(6)' == t for t in _texts(fig))
  assert {'weights', 'residual (sum)'} <= _legend_labels(fig)
  merged = gmn_jax.draw_graph(graph, pg, summary=True, max_boxes=3)
  layers = len({g.depth for g in pg.architecture.groups})
  assert layers <= sum(isinstance(p, FancyBboxPatch) for p in merged.axes[0].patches) < len(
      pg.architecture.groups)


def test_many_weights_draw_only_the_strongest(traced):
  pg, variables, _ = traced('vit')
  fig = gmn_jax.draw_graph(pg.encode(variables), pg, max_weight_edges=100)
  assert 'the 100 strongest of 544 weight edges drawn' in fig.axes[0].get_title(loc='left')


def test_draws_into_a_given_axes(traced):
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  pg, variables, _ = traced('mlp')
  fig, axes = plt.subplots(1, 2, figsize=(12, 4))
  out = gmn_jax.draw_graph(pg.encode(variables), pg, ax=axes[1], title='right')
  assert out is fig and axes[1].get_title(loc='left') == 'right'
  plt.close(fig)


def test_groups_of_one_layer_with_one_name_are_numbered():
  """BERT's embeddings sum three tables as two sums, both made in `embeddings`: two boxes of
  one column must not read the same. The same name in other layers keeps its plain label."""
  groups = [dict(name='M/embeddings/word', start=0, size=2, depth=1, kind=1),
            dict(name='M/embeddings', start=2, size=2, depth=1, kind=1),
            dict(name='M/embeddings', start=4, size=2, depth=1, kind=1),
            dict(name='M/layer/output', start=6, size=2, depth=3, kind=1),
            dict(name='M/layer/output', start=8, size=2, depth=5, kind=1)]
  nodes = {'type': np.array([1] * 8 + [2] * 2)}
  edges = {'type': np.array([gmn_jax.EdgeType.RESIDUAL] * 4 + [gmn_jax.EdgeType.WEIGHT] * 2)}
  receivers = np.array([2, 3, 4, 5, 6, 8])
  labels = draw_layout.node_labels(groups, nodes, edges, receivers)
  assert labels == ['word (2)', 'embeddings: sum 1 (2)', 'embeddings: sum 2 (2)',
                    'layer/output (2)', 'layer/output = output (2)'], labels


def test_group_labels_fit_inside_their_boxes(traced):
  pg, variables, _ = traced('vit')  # 'TransformerBlock_0: sum (8)' is wider than a box
  fig = gmn_jax.draw_graph(pg.encode(variables), pg, summary=True)
  canvas = FigureCanvasAgg(fig)
  canvas.draw()
  renderer = canvas.get_renderer()
  ax = fig.axes[0]
  boxes = [p.get_window_extent(renderer) for p in ax.patches if isinstance(p, FancyBboxPatch)]
  texts = [t for t in ax.texts if t.get_zorder() == 4 and '\n(' in t.get_text()]
  assert len(texts) == len(boxes) == len(pg.architecture.groups)
  for t in texts:
    extent = t.get_window_extent(renderer)
    box = next(b for b in boxes if b.contains((extent.x0 + extent.x1) / 2,
                                              (extent.y0 + extent.y1) / 2))
    assert box.x0 <= extent.x0 and extent.x1 <= box.x1, t.get_text()
  assert draw_layout.wrap_label('token_type_embeddings (64)', 13) == \
      'token_type_\nembeddings\n(64)'

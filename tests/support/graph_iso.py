"""Exact isomorphism of parameter graphs, for tests: ``jraph.GraphsTuple`` -> networkx.

Two parameter sets must give isomorphic graphs if and only if a known symmetry maps one onto
the other (DESIGN.md). This module decides the "isomorphic" half with networkx's VF2 matcher,
matching node and edge features exactly (after rounding to 6 decimals).

Host-side only (numpy, data-dependent shapes); never call under ``jax.jit``. Meant for small
graphs (up to a few hundred nodes); VF2 is exponential in the worst case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import jraph
import networkx as nx
import numpy as np

__all__ = ["to_networkx", "isomorphic"]

_DECIMALS = 6

Feature = tuple[Any, ...]


def _as_dict(features: Any) -> Mapping[str, Any]:
  """Views ``nodes``/``edges``/``globals`` as a dict (a bare array gets the key ``""``)."""
  if features is None:
    return {}
  if isinstance(features, Mapping):
    return features
  return {"": features}


def _num_rows(features: Mapping[str, Any], what: str) -> int | None:
  """The common first-axis length of a dict of arrays, or ``None`` for an empty dict."""
  sizes = {key: np.shape(value)[0] for key, value in features.items()}
  if len(set(sizes.values())) > 1:
    raise ValueError(f"{what} arrays disagree on their first axis: {sizes}")
  return next(iter(sizes.values()), None)


def _rounded(values: Any) -> np.ndarray:
  """Floats rounded to 6 decimals; integers and booleans (e.g. masks) unchanged."""
  values = np.asarray(values)
  if np.issubdtype(values.dtype, np.inexact):
    return np.round(values, _DECIMALS)
  return values


def _rows(features: Mapping[str, Any], n: int) -> list[Feature]:
  """One hashable feature tuple per row: each key's row flattened, keys in sorted order.

  Args:
    features: dict of arrays, each ``[n, ...]``.
    n: number of rows.

  Returns:
    ``n`` tuples of Python scalars, floats rounded to 6 decimals.
  """
  per_key = [_rounded(features[key]).reshape(n, -1).tolist() for key in sorted(features)]
  return [tuple(v for columns in per_key for v in columns[i]) for i in range(n)]


def to_networkx(graph: jraph.GraphsTuple) -> nx.MultiDiGraph:
  """Converts a ``GraphsTuple`` holding one graph into a networkx multigraph.

  Host-side (numpy). Node ``i`` gets the attribute ``feat``: a tuple of all its node features
  (``graph.nodes[key][i]`` flattened, keys in sorted order, rounded to 6 decimals). Edge ``k``
  (``senders[k] -> receivers[k]``) gets ``feat`` the same way from ``graph.edges``. Parallel
  edges between the same ordered pair are all kept. ``graph.globals`` (if any) becomes the
  graph attribute ``feat``.

  Args:
    graph: ``nodes`` and ``edges`` are dicts of arrays (or bare arrays, or ``None``) with
      first axis ``[n_node, ...]`` / ``[n_edge, ...]``; ``senders``/``receivers`` are
      ``[n_edge]``. ``n_node``, if given, must have one entry.

  Returns:
    A ``networkx.MultiDiGraph`` with nodes ``0 .. n_node - 1``.

  Raises:
    ValueError: if the tuple holds more than one graph or the arrays disagree in length.
  """
  if graph.n_node is not None and np.size(graph.n_node) != 1:
    raise ValueError(
        f"to_networkx takes a GraphsTuple with one graph, got n_node={np.asarray(graph.n_node)}"
        "; split it first with jraph.unbatch (and drop padding with jraph.unpad_with_graphs)."
    )
  nodes = _as_dict(graph.nodes)
  edges = _as_dict(graph.edges)
  senders = np.asarray(graph.senders).reshape(-1)
  receivers = np.asarray(graph.receivers).reshape(-1)

  n_node = _num_rows(nodes, "node")
  if n_node is None:
    if graph.n_node is None:
      raise ValueError("graph has no node features and no n_node: node count unknown")
    n_node = int(np.asarray(graph.n_node).reshape(-1)[0])
  n_edge = senders.shape[0]
  if receivers.shape[0] != n_edge or _num_rows(edges, "edge") not in (None, n_edge):
    raise ValueError(
        f"senders ({n_edge}), receivers ({receivers.shape[0]}) and edge features "
        f"({_num_rows(edges, 'edge')}) must have the same length"
    )

  g = nx.MultiDiGraph()
  if graph.globals is not None:
    glob = _as_dict(graph.globals)
    g.graph["feat"] = _rows(glob, 1)[0] if glob else ()
  for i, feat in enumerate(_rows(nodes, n_node)):
    g.add_node(i, feat=feat)
  for s, r, feat in zip(senders.tolist(), receivers.tolist(), _rows(edges, n_edge)):
    if not (0 <= s < n_node and 0 <= r < n_node):
      raise ValueError(f"edge {s} -> {r} points outside the {n_node} nodes")
    g.add_edge(s, r, feat=feat)
  return g


def _node_match(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
  return a["feat"] == b["feat"]


def _edge_match(a: Mapping[Any, Mapping[str, Any]], b: Mapping[Any, Mapping[str, Any]]) -> bool:
  # A multigraph matcher passes all parallel edges of a pair, keyed by edge key: compare the
  # multisets of their features, so the keys' order does not matter.
  return Counter(d["feat"] for d in a.values()) == Counter(d["feat"] for d in b.values())


def isomorphic(
    g1: jraph.GraphsTuple | nx.MultiDiGraph, g2: jraph.GraphsTuple | nx.MultiDiGraph
) -> bool:
  """Whether two one-graph ``GraphsTuple``s are isomorphic with features matched exactly.

  Host-side (numpy + networkx VF2). Node features, edge features (parallel edges compared as
  multisets) and globals must all match, after rounding to 6 decimals.

  Args:
    g1: a ``GraphsTuple`` holding one graph, or the output of :func:`to_networkx`.
    g2: same.

  Returns:
    ``True`` if a node bijection maps ``g1`` onto ``g2`` preserving edges and features.
  """
  h1 = g1 if isinstance(g1, nx.Graph) else to_networkx(g1)
  h2 = g2 if isinstance(g2, nx.Graph) else to_networkx(g2)
  if h1.graph.get("feat") != h2.graph.get("feat"):
    return False
  # Cheap necessary conditions before the exponential search.
  for view in ("nodes", "edges"):
    feats1 = Counter(f for *_, f in getattr(h1, view)(data="feat"))
    feats2 = Counter(f for *_, f in getattr(h2, view)(data="feat"))
    if feats1 != feats2:
      return False
  return nx.is_isomorphic(h1, h2, node_match=_node_match, edge_match=_edge_match)


def _permuted(
    graph: jraph.GraphsTuple, node_perm: np.ndarray, edge_perm: np.ndarray
) -> jraph.GraphsTuple:
  """Relabels node ``i`` as ``node_perm[i]`` and reorders edges by ``edge_perm``."""
  inverse = np.argsort(node_perm)  # new position -> old node
  return graph._replace(
      nodes={k: np.asarray(v)[inverse] for k, v in graph.nodes.items()},
      edges={k: np.asarray(v)[edge_perm] for k, v in graph.edges.items()},
      senders=node_perm[np.asarray(graph.senders)][edge_perm],
      receivers=node_perm[np.asarray(graph.receivers)][edge_perm],
  )


def _self_test() -> None:
  """Checks the helper on hand-built graphs; run ``python -m tests.support.graph_iso``."""
  rng = np.random.default_rng(0)
  # 4 nodes; edges 0->2 twice (parallel), 1->2, 2->3, 3->3 (self-loop).
  graph = jraph.GraphsTuple(
      nodes={"layer": np.array([0, 0, 1, 2]), "bias": rng.normal(size=(4, 1))},
      edges={
          "weight": rng.normal(size=(5, 2)),
          "type": np.array([0, 0, 0, 1, 2]),
          "mask": np.array([[1, 1], [1, 1], [1, 0], [1, 0], [1, 1]], dtype=bool),
      },
      senders=np.array([0, 0, 1, 2, 3]),
      receivers=np.array([2, 2, 2, 3, 3]),
      n_node=np.array([4]),
      n_edge=np.array([5]),
      globals=None,
  )
  assert isomorphic(graph, graph)

  permuted = _permuted(graph, node_perm=np.array([3, 1, 0, 2]), edge_perm=rng.permutation(5))
  assert isomorphic(graph, permuted), "a relabelled copy must be isomorphic"
  assert to_networkx(graph).number_of_edges() == 5, "parallel edges must be kept"

  weight = permuted.edges["weight"] + np.eye(5, 2)
  changed = permuted._replace(edges={**permuted.edges, "weight": weight})
  assert not isomorphic(graph, changed), "a changed edge feature must break isomorphism"

  bias = graph.nodes["bias"] * np.array([[1], [1], [1], [2]])
  changed = graph._replace(nodes={**graph.nodes, "bias": bias})
  assert not isomorphic(graph, changed), "a changed node feature must break isomorphism"

  # Swap the features of the two parallel edges: same multiset on the pair -> isomorphic.
  weight = graph.edges["weight"].copy()
  weight[[0, 1]] = weight[[1, 0]]
  assert isomorphic(graph, graph._replace(edges={**graph.edges, "weight": weight}))

  # Same features, rewired: move edge 1->2 to 1->3.
  rewired = graph._replace(receivers=np.array([2, 2, 3, 3, 3]))
  assert not isomorphic(graph, rewired), "rewiring must break isomorphism"

  # Swap the biases of nodes 0 and 1 (same layer) without their edges: node 0 has two edges
  # out, node 1 one, so this is no relabelling.
  bias = graph.nodes["bias"].copy()
  bias[[0, 1]] = bias[[1, 0]]
  assert not isomorphic(graph, graph._replace(nodes={**graph.nodes, "bias": bias}))

  try:
    to_networkx(jraph.batch([graph, graph]))
  except ValueError:
    pass
  else:
    raise AssertionError("a batch of two graphs must be refused")
  print("graph_iso self-test passed")


if __name__ == "__main__":
  _self_test()

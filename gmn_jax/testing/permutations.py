"""Equivariance checks for metanetworks, built on `ParameterGraph.random_symmetry`.

A metanetwork's per-graph outputs must not change, and its per-parameter outputs must move
exactly as the parameters do, when a random function-preserving permutation of the hidden
neurons is applied to its input. Each check has a negative twin: a permutation that is *not*
a symmetry (two input neurons swapped, two output neurons swapped, or two hidden neurons'
incoming weights swapped while everything else stays) must change the outputs, so that a
metanetwork that ignores the information the symmetry preserves cannot pass.

Host-side: each check calls `fn` a few times and compares with numpy. Meant for small
graphs (the non-symmetry search is quadratic in the number of candidate neurons).

Example::

    import gmn_jax, gmn_jax.testing
    pg = gmn_jax.trace(model, variables, x)
    net = gmn_jax.GMN()
    params = net.init(key, pg.encode(variables))
    fn = jax.jit(lambda g: net.apply(params, g))
    gmn_jax.testing.assert_invariant(fn, pg, variables, key)
    gmn_jax.testing.assert_equivariant(fn, pg, variables, key)
    gmn_jax.testing.assert_not_invariant(fn, pg, variables, key)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import jax
import jraph
import numpy as np

from gmn_jax.graphs.architecture import NodeType
from gmn_jax.graphs.symmetry import Symmetry

NON_SYMMETRIES = ('inputs', 'outputs', 'incoming')


def _keys(key: Any, n: int) -> list[Any]:
  if isinstance(key, (int, np.integer)):
    return [int(key) + i for i in range(n)]
  return list(jax.random.split(key, n))


def _rng(key: Any) -> np.random.Generator:
  if isinstance(key, (int, np.integer)):
    return np.random.default_rng(int(key))
  return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _edge_signatures(graph: jraph.GraphsTuple) -> list[tuple]:
  e = jax.device_get(graph.edges)
  return [(int(t), int(a), o.tobytes(), m.tobytes())
          for t, a, o, m in zip(e['type'], e['act'], np.asarray(e['op']), np.asarray(e['mask']))]


def _induced_edge_perm(graph: jraph.GraphsTuple, node_perm: np.ndarray) -> np.ndarray | None:
  """The edge permutation a node permutation induces, if it maps the graph's edge structure
  (endpoints, type, operation, program, mask) onto itself; else None."""
  senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
  sig = _edge_signatures(graph)
  where = {(int(s), int(r)) + g: i for i, (s, r, g) in enumerate(zip(senders, receivers, sig))}
  perm = np.empty(len(senders), np.int64)
  for i, (s, r, g) in enumerate(zip(senders, receivers, sig)):
    j = where.get((int(node_perm[s]), int(node_perm[r])) + g)
    if j is None:
      return None
    perm[i] = j
  return perm


def _swap(n: int, a: int, b: int) -> np.ndarray:
  perm = np.arange(n)
  perm[a], perm[b] = b, a
  return perm


def _changes_values(graph: jraph.GraphsTuple, sym: Symmetry) -> bool:
  moved = _apply_graph(sym, graph)
  return not (np.array_equal(np.asarray(moved.edges['weight']), np.asarray(graph.edges['weight']))
              and np.array_equal(np.asarray(moved.nodes['param']),
                                 np.asarray(graph.nodes['param'])))


def _node_swaps(pg, graph, node_type: NodeType, rng) -> Symmetry | None:
  candidates = np.flatnonzero(np.asarray(graph.nodes['type']) == int(node_type))
  pairs = [(a, b) for i, a in enumerate(candidates) for b in candidates[i + 1:]]
  for k in rng.permutation(len(pairs)):
    a, b = pairs[k]
    node_perm = _swap(pg.n_node, a, b)
    edge_perm = _induced_edge_perm(graph, node_perm)
    if edge_perm is not None:
      sym = Symmetry(pg, node_perm, edge_perm)
      if _changes_values(graph, sym):
        return sym
  return None


def _incoming_swaps(pg, graph, rng) -> Symmetry | None:
  """Two hidden neurons exchange their incoming weights only (biases and outgoing weights
  stay): not function-preserving."""
  nodes = jax.device_get(graph.nodes)
  senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
  sig = _edge_signatures(graph)
  incoming: dict[int, dict[tuple, int]] = {}
  for i, (s, r, g) in enumerate(zip(senders, receivers, sig)):
    incoming.setdefault(int(r), {})[(int(s),) + g] = i
  hidden = np.flatnonzero(nodes['type'] == int(NodeType.HIDDEN))
  by_group: dict[tuple, list[int]] = {}
  for n in hidden:
    if int(n) in incoming:
      key = (int(nodes['layer'][n]), frozenset(incoming[int(n)]))
      by_group.setdefault(key, []).append(int(n))
  pairs = [(a, b) for ns in by_group.values() for i, a in enumerate(ns) for b in ns[i + 1:]]
  for k in rng.permutation(len(pairs)):
    a, b = pairs[k]
    edge_perm = np.arange(pg.n_edge)
    for key, i in incoming[a].items():
      j = incoming[b][key]
      edge_perm[i], edge_perm[j] = j, i
    sym = Symmetry(pg, np.arange(pg.n_node), edge_perm)
    if _changes_values(graph, sym):
      return sym
  return None


def non_symmetry(pg, variables: Any, key: Any, kind: str = 'auto') -> Symmetry:
  """A permutation of a network's parameters that is *not* function-preserving.

  Returned as a `Symmetry` object so that `.apply(variables)` gives the changed parameters;
  unlike a true symmetry, the graph of the result is `pg.encode(ns.apply(variables))` (the
  template's node features, the moved values), not `ns.apply_graph(pg.encode(variables))`.

  Args:
    pg: the ParameterGraph.
    variables: the parameters (the swap is chosen so that it changes them).
    key: a `jax.random` key or an integer seed.
    kind: `'inputs'` (two input neurons swap their weights: the network reads its input
      permuted), `'outputs'` (two output neurons swap), `'incoming'` (two hidden neurons of one
      layer swap their incoming weights only), or `'auto'` (the first of these that the
      architecture allows).

  Returns:
    The non-symmetry.

  Raises:
    ValueError: if the architecture allows none of the requested kind.
  """
  graph = pg.encode(variables)
  rng = _rng(key)
  kinds = NON_SYMMETRIES if kind == 'auto' else (kind,)
  for k in kinds:
    if k == 'inputs':
      found = _node_swaps(pg, graph, NodeType.INPUT, rng)
    elif k == 'outputs':
      found = _node_swaps(pg, graph, NodeType.OUTPUT, rng)
    elif k == 'incoming':
      found = _incoming_swaps(pg, graph, rng)
    else:
      raise ValueError(f'unknown non-symmetry {k!r}; choose from {NON_SYMMETRIES} or auto')
    if found is not None:
      return found
  raise ValueError(f'{pg!r} admits no non-symmetry of kind {kind!r} that changes these '
                   'parameters (no two interchangeable input, output or hidden neurons).')


_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _decode(pg, graph: jraph.GraphsTuple) -> Any:
  """`pg.decode`, jitted once per template (eager decoding compiles every small op)."""
  if pg not in _DECODERS:
    _DECODERS[pg] = jax.jit(lambda weight, param: pg.decode(jraph.GraphsTuple(
        nodes={'param': param}, edges={'weight': weight}, senders=None, receivers=None,
        globals=None, n_node=None, n_edge=None)))
  return jax.device_get(_DECODERS[pg](graph.edges['weight'], graph.nodes['param']))


def _permute(sym: Symmetry, tree: Any, nodes: bool) -> Any:
  """`sym.apply_nodes` / `apply_edges` on every leaf, in numpy."""
  src = np.argsort(sym.node_perm if nodes else sym.edge_perm)
  return jax.tree_util.tree_map(lambda a: np.asarray(a)[src], tree)


def _apply_graph(sym: Symmetry, graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
  """`sym.apply_graph` in numpy."""
  graph = jax.device_get(graph)
  return graph._replace(nodes=_permute(sym, graph.nodes, True),
                        edges=_permute(sym, graph.edges, False))


def _apply(sym: Symmetry, pg, variables: Any) -> Any:
  """`sym.apply(variables)`, with the jitted decoder."""
  return _decode(pg, _apply_graph(sym, pg.encode(variables)))


def _reencoded(graph: jraph.GraphsTuple, sym: Symmetry) -> jraph.GraphsTuple:
  """`pg.encode(sym.apply(v))` from `graph = pg.encode(v)`: moved values, fixed features."""
  graph = jax.device_get(graph)
  moved = _apply_graph(sym, graph)
  return graph._replace(nodes={**graph.nodes, 'param': moved.nodes['param']},
                        edges={**graph.edges, 'weight': moved.edges['weight']})


def _outputs_of(out: Any) -> Any:
  return out.globals if isinstance(out, jraph.GraphsTuple) else out


def _close(a: Any, b: Any, atol: float, rtol: float) -> tuple[bool, str]:
  leaves_a, tree_a = jax.tree_util.tree_flatten_with_path(a)
  leaves_b = jax.tree_util.tree_leaves(b)
  if len(leaves_a) != len(leaves_b):
    return False, f'different structures: {tree_a} vs {jax.tree_util.tree_structure(b)}'
  worst = ''
  ok = True
  for (path, x), y in zip(leaves_a, leaves_b):
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
      return False, f'{jax.tree_util.keystr(path)}: shapes {x.shape} vs {y.shape}'
    if np.issubdtype(x.dtype, np.inexact):
      if not np.allclose(x, y, atol=atol, rtol=rtol, equal_nan=True):
        ok = False
        diff = np.abs(x.astype(np.float64) - y)
        worst += f'\n  {jax.tree_util.keystr(path)}: max |difference| {np.nanmax(diff):.3g}'
    elif not np.array_equal(x, y):
      ok = False
      worst += f'\n  {jax.tree_util.keystr(path)}: integer/bool entries differ'
  return ok, worst


def _crop(pg, graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
  """The first graph of `graph`, with K and P cropped to the template's widths."""
  graph = jax.device_get(graph)
  k, p = pg.kernel_size, pg.node_param_size
  nodes = {key: (v[:pg.n_node, :p] if key in ('param', 'param_mask') else v[:pg.n_node])
           for key, v in graph.nodes.items()}
  edges = {key: (v[:pg.n_edge, :k] if key in ('weight', 'mask') else v[:pg.n_edge])
           for key, v in graph.edges.items()}
  globals_ = None if graph.globals is None else graph.globals[:1]
  return graph._replace(nodes=nodes, edges=edges, globals=globals_,
                        senders=graph.senders[:pg.n_edge], receivers=graph.receivers[:pg.n_edge],
                        n_node=np.array([pg.n_node]), n_edge=np.array([pg.n_edge]))


def _symmetries(pg, key, n: int) -> list[Symmetry]:
  syms = [pg.random_symmetry(k) for k in _keys(key, n)]
  if all(np.array_equal(s.node_perm, np.arange(pg.n_node)) for s in syms):
    raise ValueError(f'{pg!r}: every drawn symmetry is the identity (the architecture has no '
                     'interchangeable hidden neurons, or n is too small); the check would '
                     'test nothing.')
  return syms


def assert_invariant(fn: Callable[[jraph.GraphsTuple], Any], pg, variables: Any, key: Any,
                     n: int = 3, atol: float = 1e-5, rtol: float = 1e-5) -> None:
  """Asserts that `fn` gives the same outputs on symmetric copies of a network.

  Args:
    fn: maps the parameter graph of `variables` (one graph, from `pg.encode`) to outputs: a
      pytree of arrays, or a GraphsTuple whose `globals` are compared (a metanetwork's
      per-graph readout, e.g. `lambda g: model.apply(params, g)`).
    pg: the ParameterGraph of the architecture.
    variables: the network's parameters.
    key: a `jax.random` key or an integer seed for the symmetries.
    n: how many random symmetries to try.
    atol, rtol: tolerances (`np.allclose`).

  Raises:
    AssertionError: naming the outputs that changed and by how much.
  """
  graph = jax.device_get(pg.encode(variables))
  reference = _outputs_of(fn(graph))
  for i, sym in enumerate(_symmetries(pg, key, n)):
    ok, why = _close(_outputs_of(fn(_apply_graph(sym, graph))), reference, atol, rtol)
    if not ok:
      raise AssertionError(f'outputs are not invariant under symmetry {i}:{why}')


def assert_equivariant(fn: Callable[[jraph.GraphsTuple], jraph.GraphsTuple], pg,
                       variables: Any, key: Any, n: int = 3, atol: float = 1e-5,
                       rtol: float = 1e-5) -> None:
  """Asserts that `fn`'s per-node, per-edge and decoded per-parameter outputs move exactly as
  the parameters do, and that its `globals` (if any) do not change.

  Args:
    fn: maps the parameter graph of `variables` (one graph) to a GraphsTuple whose first
      graph is laid out like the input (a metanetwork's output; padding after it and wider K/P
      are allowed). Every array in its `nodes` and `edges` is checked, and `pg.decode` of it
      (`edges['weight']`, `nodes['param']`) is compared with the permuted decoded output.
    pg, variables, key, n, atol, rtol: as in `assert_invariant`.

  Raises:
    AssertionError: naming the outputs that did not move with the symmetry.
  """
  graph = jax.device_get(pg.encode(variables))
  reference = _crop(pg, fn(graph))
  decoded = _decode(pg, reference)
  for i, sym in enumerate(_symmetries(pg, key, n)):
    out = _crop(pg, fn(_apply_graph(sym, graph)))
    checks = {
        'nodes': (out.nodes, _permute(sym, reference.nodes, True)),
        'edges': (out.edges, _permute(sym, reference.edges, False)),
        'decoded parameters': (_decode(pg, out), _apply(sym, pg, decoded)),
        'globals': (out.globals, reference.globals),
    }
    for what, (got, want) in checks.items():
      ok, why = _close(got, want, atol, rtol)
      if not ok:
        raise AssertionError(f'{what} are not equivariant under symmetry {i}:{why}')


def assert_not_invariant(fn: Callable[[jraph.GraphsTuple], Any], pg, variables: Any,
                         key: Any, kind: str = 'auto', atol: float = 1e-5,
                         rtol: float = 1e-5) -> None:
  """The negative twin of `assert_invariant`: a non-symmetry (see `non_symmetry`) must change
  `fn`'s outputs by more than the tolerances.

  Raises:
    AssertionError: if the outputs stay the same.
  """
  graph = pg.encode(variables)
  bad = non_symmetry(pg, variables, key, kind)
  ok, _ = _close(_outputs_of(fn(_reencoded(graph, bad))), _outputs_of(fn(graph)), atol, rtol)
  if ok:
    raise AssertionError(f'a non-symmetry ({kind}) did not change the outputs: the function '
                         'ignores information that only a true symmetry preserves.')


def assert_not_equivariant(fn: Callable[[jraph.GraphsTuple], jraph.GraphsTuple], pg,
                           variables: Any, key: Any, kind: str = 'auto', atol: float = 1e-5,
                           rtol: float = 1e-5) -> None:
  """The negative twin of `assert_equivariant`: moving the parameters by a non-symmetry must
  not simply move the decoded per-parameter outputs the same way.

  Raises:
    AssertionError: if the decoded outputs follow the non-symmetry.
  """
  graph = pg.encode(variables)
  bad = non_symmetry(pg, variables, key, kind)
  moved = _decode(pg, _crop(pg, fn(_reencoded(graph, bad))))
  want = _apply(bad, pg, _decode(pg, _crop(pg, fn(graph))))
  ok, _ = _close(moved, want, atol, rtol)
  if ok:
    raise AssertionError(f'the decoded outputs moved with a non-symmetry ({kind}) as if it '
                         'were a symmetry.')

"""Scaling symmetries of hidden neurons (Kalogeropoulos et al. 2024, ScaleGMN), read off the
traced programs, and their action on parameter graphs.

A hidden neuron n computes `act(c * (sum_j w_jn x_j + b_n))` for literal constants c and feeds
only plain weights. If `act` is ReLU, `act(s z) = s act(z)` for any s > 0; if it is odd (tanh,
sin), `act(-z) = -act(z)`. Multiplying n's incoming weights and bias by s and its outgoing
weights by 1/s then leaves the function unchanged. These are symmetries the permutation-
equivariant metanetworks are not invariant to, so they make training augmentations: the same
function, other weights.

A neuron qualifies only when its program (`pg.programs` of its outgoing edges) is, step by
step, an optional bias `add(_,p0[θ])`, multiplications or divisions by literal numbers, one
`max(_,0)`, `tanh` or `sin`, and then such constants or a `mean` (pooling); when all its edges
are weight edges (no residual, attention or block edges); and when its only per-neuron
parameter is that bias. Everything else (normalisation layers, residual streams, attention,
GELU, ...) keeps factor 1, which is always sound.
"""

from __future__ import annotations

import re

import jraph
import numpy as np

from gmn_jax.graphs.architecture import EdgeType, NodeType

NONE, SIGN, SCALE = 0, 1, 2  # what a neuron admits: nothing, sign flips, positive scales

_BIAS = 'add(_,p0[θ])'
_NUMBER = r'-?\d+(?:\.\d*)?(?:e[-+]?\d+)?'
_LINEAR = re.compile(rf'mul\[\]\({_NUMBER},_\)|mul\[\]\(_,{_NUMBER}\)|div\(_,{_NUMBER}\)')
_POOL = re.compile(r'mean\[axes=\([\d, ]*\)\]')
_ACTIVATIONS = {'max(_,0)': SCALE, 'tanh[](_)': SIGN, 'sin[](_)': SIGN}


def program_scaling(program: str) -> tuple[int, bool]:
  """(`NONE`/`SIGN`/`SCALE`, whether the program adds a bias `p0`) of one program text."""
  steps = program.split(';')
  if steps[0] != '':
    return NONE, False
  steps = steps[1:]
  has_bias = bool(steps) and steps[0] == _BIAS
  steps = steps[1:] if has_bias else steps
  kind = NONE
  for step in steps:
    if step in _ACTIVATIONS and kind == NONE:
      kind = _ACTIVATIONS[step]
    elif not (_LINEAR.fullmatch(step) or (kind != NONE and _POOL.fullmatch(step))):
      return NONE, has_bias
  return kind, has_bias


def scaling_kinds(pg) -> np.ndarray:
  """`[n_node]` int8: `SCALE`, `SIGN` or `NONE` for each node of the template `pg`."""
  n = pg.n_node
  senders, receivers = pg.senders, pg.receivers
  edge_type = pg.edge_type
  edge_act = np.asarray(pg.edge_act)
  node_mask = np.asarray(pg.node_param_mask)
  ok = np.asarray(pg.node_type) == int(NodeType.HIDDEN)
  not_weight = edge_type != int(EdgeType.WEIGHT)
  ok[senders[not_weight]] = False
  ok[receivers[not_weight]] = False
  # one program on all outgoing edges, and at least one outgoing edge
  first_act = np.full(n, -1, np.int64)
  first_act[senders] = edge_act
  ok &= np.bincount(senders, minlength=n) > 0
  ok[senders[edge_act != first_act[senders]]] = False
  kinds = np.zeros(n, np.int8)
  for program_id in np.unique(first_act[ok]):
    kind, has_bias = program_scaling(pg.programs[int(program_id)])
    expected = np.zeros(node_mask.shape[1], bool)
    expected[:1] = has_bias
    rows = ok & (first_act == program_id) & np.all(node_mask == expected, axis=1)
    kinds[rows] = kind
  return kinds


def random_factors(kinds: np.ndarray, rng: np.random.Generator,
                   max_scale: float = 2.0) -> np.ndarray:
  """`[n_node]` float32 factors: random signs where `SIGN`, log-uniform in
  `[1 / max_scale, max_scale]` where `SCALE`, 1 elsewhere. Host-side."""
  signs = rng.choice(np.array([-1.0, 1.0], np.float32), kinds.shape)
  scales = np.exp(rng.uniform(-np.log(max_scale), np.log(max_scale), kinds.shape))
  return np.where(kinds == SIGN, signs, np.where(kinds == SCALE, scales, 1.0)).astype(np.float32)


def apply_factors(graph: jraph.GraphsTuple, factors: np.ndarray) -> jraph.GraphsTuple:
  """Scales each node's incoming weights and bias by its factor and its outgoing weights by
  the inverse: the same function when `factors` come from `random_factors` of
  `scaling_kinds`. Probe features (`nodes['probe']`), if present, scale with their neuron.
  Works on one graph of the template, on host or device arrays."""
  edges, nodes = graph.edges, graph.nodes
  per_edge = factors[np.asarray(graph.receivers)] / factors[np.asarray(graph.senders)]
  weight = edges['weight'] * per_edge[:, None].astype(edges['weight'].dtype)
  param_scale = np.ones(nodes['param'].shape, np.float32)
  param_scale[:, 0] = factors
  param = nodes['param'] * param_scale.astype(nodes['param'].dtype)
  nodes = {**nodes, 'param': param}
  if 'probe' in nodes:  # a rescaled ReLU neuron's values scale with it; a flipped tanh flips
    nodes['probe'] = nodes['probe'] * factors[:, None].astype(nodes['probe'].dtype)
  return graph._replace(edges={**edges, 'weight': weight}, nodes=nodes)

"""The Architecture: what tracing a model finds out, before it becomes a graph template.

Host-side bookkeeping only (numpy, data-dependent shapes, never under jit). The tracer
(`graphs.tracing`) walks a jaxpr and calls the `add_*` methods here; `parameter_graph.py`
turns the finished record into static gather indices. Every neuron has a global integer id,
which becomes its node index in the parameter graph.
"""

from __future__ import annotations

import dataclasses
import enum
import zlib

import numpy as np


class NodeType(enum.IntEnum):
  """What a node of the parameter graph stands for (`nodes['type']`)."""

  INPUT = 0  # an input neuron of the network (its position is meaningful)
  HIDDEN = 1  # a hidden neuron: interchangeable with the others of its orbit
  OUTPUT = 2  # an output neuron of the network (its position is meaningful)
  HEAD = 3  # one attention head: joins the Q, K and V neurons that belong to it
  BLOCK = 4  # a set of neurons normalised together (a GroupNorm group)
  # One scalar of a parameter no neuron carries (never used by the traced call, or used only
  # by outputs without neurons): held in `nodes['param']`, no edges, never moved.
  PARAMETER = 5


class EdgeType(enum.IntEnum):
  """What an edge of the parameter graph stands for (`edges['type']`)."""

  WEIGHT = 0  # a contraction weight (Dense entry, conv kernel, embedding row)
  RESIDUAL = 1  # `a + b` of two neuron groups: a parameter-free edge into the sum
  RESIDUAL_NEG = 2  # the subtracted side of `a - b`
  PRODUCT = 3  # `a * b` of two neuron groups (gating)
  QUERY_KEY = 4  # a query neuron to the key neuron it is contracted with
  HEAD_QUERY = 5  # a query neuron to its head
  HEAD_KEY = 6  # a key neuron to its head
  HEAD_VALUE = 7  # a head to the value neurons it averages
  BLOCK = 8  # a neuron to the block (normalisation group) it is normalised with


class OpKind(enum.IntEnum):
  NONE = 0
  DENSE = 1
  CONV = 2
  EMBED = 3


def digest(text: str) -> int:
  """A stable positive 31-bit id for a program string (0 is kept for the empty program)."""
  return 0 if not text else (zlib.crc32(text.encode()) & 0x7FFFFFFF) or 1


def describe_op(kind: OpKind, groups: int = 1, kernel=(), stride=(), rhs_dilation=(),
                lhs_dilation=(), padding=()) -> str:
  """The text of an operation; its `digest` is the edge's `edges['op']` id."""
  text = kind.name.lower()
  if kind == OpKind.CONV:
    pads = tuple(tuple(int(v) for v in p) for p in padding)
    text += (f' kernel={tuple(kernel)} stride={tuple(stride)} dilation={tuple(rhs_dilation)}'
             f' lhs_dilation={tuple(lhs_dilation)} padding={pads} groups={groups}')
  return text


class SharedUseError(ValueError):
  """A shared parameter's uses do not correspond neuron for neuron (the tracer re-raises it
  as `UnsupportedModelError`)."""


def _lines_up(a: np.ndarray, b: np.ndarray) -> bool:
  """Whether the pairs (a[i], b[i]) are a one-to-one correspondence between neurons."""
  pairs = np.unique(np.stack([np.ravel(a), np.ravel(b)], 1), axis=0)
  return len(np.unique(pairs[:, 0])) == len(pairs) == len(np.unique(pairs[:, 1]))


@dataclasses.dataclass
class Group:
  """A set of neurons made by one operation (a contraction, a join, an attention's heads)."""

  name: str  # the Flax module path where it was made, for messages and summaries
  start: int  # global id of its first neuron
  size: int
  depth: int  # the layer index shown to metanetworks
  kind: NodeType

  @property
  def ids(self) -> np.ndarray:
    return np.arange(self.start, self.start + self.size)


@dataclasses.dataclass
class EdgeBlock:
  """Edges made by one operation: `senders[i] -> receivers[i]`, with parameter slots.

  `slots[i]` lists, in order of kernel position, the flat indices (into the concatenation
  of all parameter leaves) of the values this edge carries; parameter-free edges carry none.
  """

  senders: np.ndarray  # [n] int
  receivers: np.ndarray  # [n] int
  kind: EdgeType
  op: int  # digest of the operation's text (`describe_op`)
  act: np.ndarray  # [n] int32: digest of the elementwise program applied at the sender
  slot_offsets: np.ndarray  # [n + 1] int: edge i owns flat[slot_offsets[i]:slot_offsets[i+1]]
  slot_values: np.ndarray  # [total] int: flat parameter indices, grouped by edge


@dataclasses.dataclass
class Attachment:
  """Per-neuron parameters (biases, scales, running statistics) attached to nodes."""

  neurons: np.ndarray  # [n] int: the neuron each parameter element attaches to
  flat: np.ndarray  # [n] int: flat parameter index of the element


class Architecture:
  """Neuron groups, edges, node parameters and symmetry constraints of one traced model."""

  def __init__(self, leaf_paths: list[str], leaf_shapes: list[tuple[int, ...]]):
    self.leaf_paths = leaf_paths
    self.leaf_shapes = leaf_shapes
    sizes = [int(np.prod(s)) for s in leaf_shapes]
    self.leaf_offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    self.groups: list[Group] = []
    self.edges: list[EdgeBlock] = []
    self.attachments: list[Attachment] = []
    # Symmetry constraints (see symmetry.py): neuron pairs that must move together, neuron
    # sets that form orbits of their own, and blocks (heads, conv groups) that move as wholes.
    self.ties: list[tuple[np.ndarray, np.ndarray]] = []
    self.segments: list[np.ndarray] = []
    self.block_ties: list[list[list[np.ndarray]]] = []
    self.positions: dict[int, int] = {}  # input/output neuron -> its position
    # hidden neuron -> the classes of the constants that tell it apart (rotary, ALiBi)
    self.distinctions: dict[int, tuple[int, ...]] = {}
    # from `settle_positions`, and `hold_unplaced`'s parameter nodes
    self.hidden_positions: dict[int, int] = {}
    self.output_act = 0  # program applied to the (first) output
    self.output_acts: dict[int, int] = {}  # output neuron -> program applied to its output
    self.programs: dict[int, str] = {0: ''}  # digest -> program text, for summaries
    self.ops: dict[int, str] = {0: ''}  # digest -> operation text

  @property
  def n_neurons(self) -> int:
    return self.groups[-1].start + self.groups[-1].size if self.groups else 0

  @property
  def n_params(self) -> int:
    return int(self.leaf_offsets[-1])

  def leaf_of(self, flat: int) -> int:
    return int(np.searchsorted(self.leaf_offsets, flat, side='right') - 1)

  def add_group(self, name: str, size: int, depth: int, kind: NodeType = NodeType.HIDDEN) -> Group:
    group = Group(name, self.n_neurons, size, depth, kind)
    self.groups.append(group)
    return group

  def group_of(self, neurons: np.ndarray) -> np.ndarray:
    starts = np.array([g.start for g in self.groups])
    return np.searchsorted(starts, neurons, side='right') - 1

  def depth_of(self, neurons: np.ndarray) -> int:
    neurons = np.unique(neurons[neurons >= 0])
    if neurons.size == 0:
      return 0
    return max(self.groups[g].depth for g in np.unique(self.group_of(neurons)))

  def program_id(self, program: str) -> int:
    key = digest(program)
    self.programs.setdefault(key, program)
    return key

  def op_id(self, text: str) -> int:
    key = digest(text)
    self.ops.setdefault(key, text)
    return key

  def add_weight_edges(self, senders, receivers, flat, kind: EdgeType, op: int, act: int):
    """Adds one edge per distinct (sender, receiver) pair; `flat[i]` is the parameter index
    of one element on pair (senders[i], receivers[i]). Kernel positions follow the flat order.
    """
    senders, receivers, flat = (np.asarray(a, np.int64).ravel() for a in (senders, receivers, flat))
    n = np.int64(max(int(senders.max(initial=0)), int(receivers.max(initial=0))) + 1)
    pair = senders * n + receivers
    if not (np.all(pair[1:] >= pair[:-1]) and np.all((pair[1:] > pair[:-1]) | (flat[1:] > flat[:-1]))):
      order = np.lexsort((flat, receivers, senders))
      senders, receivers, flat = senders[order], receivers[order], flat[order]
    new = np.ones(len(senders), bool)
    new[1:] = (senders[1:] != senders[:-1]) | (receivers[1:] != receivers[:-1])
    starts = np.flatnonzero(new)
    offsets = np.concatenate([starts, [len(flat)]])
    n = len(starts)
    self.edges.append(EdgeBlock(senders[starts], receivers[starts], kind, op,
                                np.full(n, act, np.int32), offsets, flat))

  def add_free_edges(self, senders, receivers, kind: EdgeType, act: int = 0):
    """Adds parameter-free edges (residual joins, attention structure), one per distinct pair."""
    pairs = np.unique(np.stack([np.ravel(senders), np.ravel(receivers)], 1), axis=0)
    n = len(pairs)
    self.edges.append(EdgeBlock(pairs[:, 0], pairs[:, 1], kind, 0,
                                np.full(n, act, np.int32), np.zeros(n + 1, np.int64),
                                np.zeros(0, np.int64)))

  def distinguish(self, neurons: np.ndarray, classes: np.ndarray):
    """Records that a constant puts `neurons[i]` in class `classes[i]` (ranked by value)."""
    for n, c in zip(np.ravel(neurons), np.ravel(classes)):
      self.distinctions[int(n)] = self.distinctions.get(int(n), ()) + (int(c),)

  def settle_positions(self):
    """Hidden neurons told apart by constants get a position: the rank of their classes within
    their group, so the graph shows what the symmetry may not swap."""
    by_group: dict[int, list[int]] = {}
    for n in self.distinctions:
      if n not in self.positions:
        by_group.setdefault(int(self.group_of(np.array([n]))[0]), []).append(n)
    for members in by_group.values():
      rank = {c: k for k, c in enumerate(sorted({self.distinctions[n] for n in members}))}
      for n in members:
        self.hidden_positions[n] = rank[self.distinctions[n]]

  def attach(self, neurons, flat):
    self.attachments.append(Attachment(np.asarray(neurons, np.int64).ravel(),
                                       np.asarray(flat, np.int64).ravel()))

  def hold_unplaced(self):
    """Gives every parameter scalar that no edge or attachment holds a `NodeType.PARAMETER`
    node of its own, which holds it as its one node parameter (`position`: its flat index in
    its leaf). Such scalars are never used by the traced call (DINOv2's `mask_token` without
    a `bool_masked_pos`) or only by outputs that carry no neurons (CLIP's `logit_scale` on
    the logits): the graph keeps their values, so `decode(encode(v)) == v` and each scalar
    has one slot, but no edge says what they do. Symmetries never move them."""
    used = np.zeros(self.n_params, bool)
    for block in self.edges:
      used[block.slot_values] = True
    for a in self.attachments:
      used[a.flat] = True
    for leaf, path in enumerate(self.leaf_paths):
      lo, hi = self.leaf_offsets[leaf], self.leaf_offsets[leaf + 1]
      flat = lo + np.flatnonzero(~used[lo:hi])
      if flat.size == 0:
        continue
      group = self.add_group(path, flat.size, 0, NodeType.PARAMETER)
      self.attach(group.ids, flat)
      for n, f in zip(group.ids, flat):
        self.hidden_positions[int(n)] = int(f - lo)

  def tie_shared_uses(self):
    """Ties the neurons of every use of a shared parameter to those of its first use.

    Shared parameters (tied input/output embeddings, one embedding for encoder and decoder,
    a layer applied at several depths, a recurrent cell at every step) follow the GMN paper's
    rule for weight sharing: the graph has one edge (or node parameter) per *use*, and each
    parameter scalar has exactly one slot, that of its first use in edge order (`encode` copies
    the value to the edges of the other uses; `decode` reads the first-use slot). A symmetry
    must map edges that share a parameter onto edges that share the same one, so it draws one
    permutation for all uses: the neuron a parameter axis indexes in one use is tied to the
    neuron the same axis indexes in the first use (a tie makes them one unit of
    `symmetry.Orbits`, moved together). Which end of an edge matches which end of the
    first-use edge is read from the parameter itself: a tied LM head reads the embedding table
    transposed, so its senders match the embedding's receivers. Where neither pairing lines
    up neuron for neuron, the model is refused.

    Raises:
      SharedUseError: a shared parameter whose uses do not line up neuron for neuron.
    """
    uses = []  # per use: (flat, sender, receiver)
    for block in self.edges:
      if block.slot_values.size:
        counts = np.diff(block.slot_offsets)
        uses.append((block.slot_values, np.repeat(block.senders, counts),
                     np.repeat(block.receivers, counts)))
    for a in self.attachments:
      uses.append((a.flat, a.neurons, a.neurons))
    if not uses:
      return
    flat = np.concatenate([u[0] for u in uses])
    if len(np.unique(flat)) == len(flat):
      return
    first_use = np.full(self.n_params, -1, np.int64)
    ends = np.zeros((self.n_params, 2), np.int64)
    for k, (f, s, r) in enumerate(uses):
      new = first_use[f] < 0
      f_new, keep = np.unique(f[new], return_index=True)
      first_use[f_new] = k
      ends[f_new, 0], ends[f_new, 1] = s[new][keep], r[new][keep]
    for k, (f, s, r) in enumerate(uses):
      again = first_use[f] != k
      if not again.any():
        continue
      f, s, r = f[again], s[again], r[again]
      s0, r0 = ends[f, 0], ends[f, 1]
      for a, b, c, d in ((s, s0, r, r0), (s, r0, r, s0)):
        if _lines_up(a, b) and _lines_up(c, d):
          self.ties += [(a, b), (c, d)]
          break
      else:
        leaf = self.leaf_of(int(f[0]))
        raise SharedUseError(
            f'parameter {self.leaf_paths[leaf]} is shared between uses whose neurons do not '
            'line up one for one (e.g. a kernel used both as a matrix and as a scale); no '
            'faithful parameter graph with one slot per scalar exists.')

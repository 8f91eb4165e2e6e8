"""`init_params`: a Flax module's `init` as one compiled program, its random draws batched.

XLA's CPU compile costs roughly 10-40 ms per fused kernel, and a metanetwork's `init` has
hundreds: a threefry hash per parameter's `fold_in` and per draw, and each draw's transform
into its distribution (an inverse error function per (truncated) normal). `init_params` reads
the program (`jax.make_jaxpr(model.init)`, nested `jit`s inlined) and evaluates it under
`jax.jit` with (1) every `fold_in` of one key by constant data as one vmapped hash; (2) every
32-bit threefry draw as one hash over all draws' elements (each element hashed with its own
draw's key and counter); (3) each draw's chain of elementwise primitives (bits to floats,
`erf_inv`, clipping, the initializer's scale: whatever elementwise primitives follow it, with
scalar side inputs) applied once to all draws whose chains are the same primitives, a side
input that differs between draws given per element; the parameters are cut out on the host.

Each element goes through the same primitives with the same inputs: the plain
`jax.jit(model.init)`'s bits (`tests/training/test_init.py`). Draws it cannot batch (another
PRNG, 16- or 64-bit draws, keys or scales that depend on other draws, draws inside loops or
custom-derivative calls) stay as they are; with nothing to batch (or threefry not
partitionable, side effects, or jax before 0.10, whose compile rounds 1 ulp apart) it is the
plain jitted `init`, the reason logged (INFO).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore
from jax.extend.random import threefry2x32_p

_LOG = logging.getLogger(__name__)
_BATCHES_FROM = (0, 10)  # the plain init's bits from this jax on (jax 0.8.1: 1 ulp apart)

# Eager `init` scales each draw in a program of its own; XLA's algebraic simplifier would fold
# `(normal * sqrt 2) * scale` into one multiply, 1 ulp away, so it is off here. The program
# runs once: LLVM's cheaper optimisation level halves its compile time.
_INIT_OPTIONS = {'xla_disable_hlo_passes': 'algsimp', 'xla_backend_optimization_level': 1}

# Primitives that compute each output element from the same element of each input (inputs of
# one element broadcast), so they commute with concatenating and splitting their inputs.
_ELEMENTWISE = frozenset("""abs acos acosh add and asin asinh atan atan2 atanh
    bitcast_convert_type cbrt ceil clamp convert_element_type copy copy_p cos cosh div eq erf
    erf_inv erfc exp exp2 expm1 floor ge gt integer_pow is_finite le lgamma log log1p logistic
    lt max min mul ne neg nextafter not or pow reduce_precision rem round rsqrt select_n
    shift_left shift_right_arithmetic shift_right_logical sign sin sinh sqrt square sub tan
    tanh xor""".split())
_FLAT_ORDER = frozenset({'reshape'})  # row-major reshapes keep the flat order


def _is_threefry_key(aval) -> bool:
  return getattr(aval, 'shape', None) == () and str(getattr(aval, 'dtype', '')) == 'key<fry>'


@dataclasses.dataclass
class _Eqn:
  prim: Any
  params: dict
  ins: list[int]
  outs: list[int]
  effects: Any = ()


class _Program:
  """A jaxpr with its nested `jit` calls inlined; values are numbered refs."""

  def __init__(self, closed: jcore.ClosedJaxpr):
    self.eqns: list[_Eqn] = []
    self.avals: list[Any] = []
    self.consts: dict[int, Any] = {}
    self.invars = [self._new(v.aval) for v in closed.jaxpr.invars]
    self.outvars = self._walk(closed.jaxpr, closed.consts, self.invars)

  def _new(self, aval, value: Any = None, const: bool = False) -> int:
    self.avals.append(aval)
    if const:
      self.consts[len(self.avals) - 1] = value
    return len(self.avals) - 1

  def _walk(self, jaxpr, consts, in_refs: list[int]) -> list[int]:
    env = {v: self._new(v.aval, c, True) for v, c in zip(jaxpr.constvars, consts)}
    env.update(zip(jaxpr.invars, in_refs))

    def read(v):
      if isinstance(v, jcore.Literal):
        return self._new(v.aval, np.asarray(v.val, v.aval.dtype), True)
      return env[v]

    for eqn in jaxpr.eqns:
      ins = [read(v) for v in eqn.invars]
      if eqn.primitive.name in ('jit', 'pjit'):  # XLA inlines these calls anyway
        inner = eqn.params['jaxpr']
        outs = self._walk(inner.jaxpr, inner.consts, ins)
      else:
        outs = [self._new(v.aval) for v in eqn.outvars]
        self.eqns.append(_Eqn(eqn.primitive, dict(eqn.params), ins, outs, eqn.effects))
      env.update(zip(eqn.outvars, outs))
    return [read(v) for v in jaxpr.outvars]


def _params_key(params: dict) -> tuple:
  return tuple(sorted((k, repr(v)) for k, v in params.items()))


@dataclasses.dataclass
class _Chain:
  """One draw and the elementwise equations that follow it. Local value -1 is the bits."""
  draw: _Eqn
  eqns: list[_Eqn]
  sides: list[list[int | None]]  # per equation, per input: the side ref (None: chain value)
  local: list[list[int]]  # per equation, per input: the chain value's local index
  exits: list[int]  # local indices read outside the chain
  exit_refs: list[int]
  inner: list[bool]  # per exit: read by an equation outside the chain

  @property
  def size(self) -> int:
    return int(np.prod(self.draw.params['shape']))

  def signature(self, avals) -> tuple:
    body = tuple((e.prim.name, () if e.prim.name in _FLAT_ORDER else _params_key(e.params),
                  tuple(('c', i) if s is None else ('s', str(avals[s].dtype))
                        for s, i in zip(side, loc)))
                 for e, side, loc in zip(self.eqns, self.sides, self.local))
    return body, tuple(self.exits)


class _Plan:
  """The batched evaluation of a `_Program` (`plan.run` is jittable)."""

  def __init__(self, prog: _Program):
    self.prog = prog
    eqns = self._live(prog)
    producer = {r: e for e in eqns for r in e.outs}
    consumers = collections.defaultdict(list)
    for e in eqns:
      for r in e.ins:
        consumers[r].append(e)
    outputs = set(prog.outvars)
    drawn = self._drawn(eqns)
    self.canon = self._canonical(eqns)
    # 1. fold_ins of one key by constant data
    folds = collections.defaultdict(list)
    for e in eqns:
      if (e.prim.name == 'random_fold_in' and _is_threefry_key(prog.avals[e.ins[0]])
          and e.ins[1] in prog.consts and np.ndim(prog.consts[e.ins[1]]) == 0):
        folds[e.ins[0]].append(e)
    self.folds = [g for g in folds.values() if len(g) > 1]
    self.folded = {e.outs[0]: (f, i) for f, g in enumerate(self.folds) for i, e in enumerate(g)}
    # 2, 3. draws and their elementwise chains
    self.unbatched_reason = None if jax.config.jax_threefry_partitionable else \
        'jax_threefry_partitionable is off'
    chains = [self._chain(e, consumers, outputs, drawn) for e in eqns
              if e.prim.name == 'random_bits' and e.params['bit_width'] == 32
              and _is_threefry_key(prog.avals[e.ins[0]]) and e.ins[0] not in drawn
              and 0 < int(np.prod(e.params['shape'])) < 2 ** 31 and not self.unbatched_reason]
    groups = collections.defaultdict(list)
    for c in chains:
      groups[c.signature(prog.avals)].append(c)
    self.groups = list(groups.values())
    if sum(c.size for c in chains) >= 2 ** 31:
      self.groups, self.unbatched_reason = [], 'over 2**31 drawn elements'
    if any(e.effects for e in eqns):
      self.groups, self.unbatched_reason = [], 'its init has side effects'
    self.host = {}  # output ref -> (group, exit, offset, size) of its batched draw
    for g, group in enumerate(self.groups):
      at = 0
      for c in group:
        for p, r in enumerate(c.exit_refs):
          if r in outputs:
            self.host[r] = (g, p, at, c.size)
        at += c.size
    self.nodes = self._order(producer)

  @staticmethod
  def _live(prog: _Program) -> list[_Eqn]:
    needed, live = set(prog.outvars), []
    for e in reversed(prog.eqns):
      if any(r in needed for r in e.outs) or e.effects:  # effects: the plain init (below)
        live.append(e)
        needed.update(e.ins)
    return live[::-1]

  @staticmethod
  def _drawn(eqns: list[_Eqn]) -> set[int]:
    """Refs that depend on the value of a draw (they cannot feed the batched draws)."""
    drawn: set[int] = set()
    for e in eqns:
      if e.prim.name == 'random_bits' or any(r in drawn for r in e.ins):
        drawn.update(e.outs)
    return drawn

  def _canonical(self, eqns: list[_Eqn]) -> dict[int, Any]:
    """A hashable key per ref computed from constants only: equal keys, equal values."""
    avals = self.prog.avals
    canon = {r: ('const', str(avals[r].dtype), np.asarray(v).tobytes(), np.shape(v))
             for r, v in self.prog.consts.items()
             if avals[r].size <= 16 and np.issubdtype(avals[r].dtype, np.number)}
    for e in eqns:
      if (len(e.outs) == 1 and all(r in canon for r in e.ins)
          and not e.prim.name.startswith('random')):
        canon[e.outs[0]] = (e.prim.name, _params_key(e.params), tuple(canon[r] for r in e.ins))
    return canon

  def _chain(self, draw: _Eqn, consumers, outputs, drawn) -> _Chain:
    avals, n = self.prog.avals, int(np.prod(draw.params['shape']))
    local, chain = {draw.outs[0]: -1}, _Chain(draw, [], [], [], [], [], [])
    frontier = [draw.outs[0]]
    while frontier:
      for e in consumers[frontier.pop(0)]:
        if any(e is c for c in chain.eqns) or len(e.outs) != 1:
          continue
        ok = (e.prim.name in _ELEMENTWISE or e.prim.name in _FLAT_ORDER) \
            and avals[e.outs[0]].size == n and e.params.get('dimensions') is None
        sides, locs = [], []
        for r in e.ins:
          if r in local:
            sides.append(None), locs.append(local[r])
          elif r not in drawn and avals[r].size == 1 and e.prim.name not in _FLAT_ORDER:
            sides.append(r), locs.append(0)
          else:
            ok = False
        if e.prim.name == 'bitcast_convert_type':
          ok = ok and avals[e.ins[0]].dtype.itemsize == avals[e.outs[0]].dtype.itemsize
        if ok:
          local[e.outs[0]] = len(chain.eqns)
          chain.eqns.append(e), chain.sides.append(sides), chain.local.append(locs)
          frontier.append(e.outs[0])
    inside = {id(e) for e in chain.eqns}
    for r, i in local.items():
      inner = any(id(e) not in inside for e in consumers[r])
      if r in outputs or inner:
        chain.exits.append(i), chain.exit_refs.append(r), chain.inner.append(inner)
    return chain

  def _order(self, producer) -> list[tuple[str, Any]]:
    """The equations and batched nodes in an order where inputs come first."""
    batched = {id(e): g for g in self.folds for e in g}
    draws = [c for g in self.groups for c in g]
    in_draws = {id(e) for c in draws for e in (c.draw, *c.eqns)}
    draw_ins = [r for c in draws for r in [c.draw.ins[0], *(s for ss in c.sides for s in ss
                                                             if s is not None)]]
    nodes, seen = [], set()
    stack = [('ref', r) for r in self.prog.outvars]
    while stack:
      kind, item = stack.pop()
      if kind == 'emit':
        nodes.append(item)
        continue
      e = producer.get(item)
      if e is None:
        continue
      if id(e) in in_draws:
        key, node, ins = 'draws', ('draws', None), draw_ins
      elif id(e) in batched:
        g = batched[id(e)]
        key, node, ins = id(g), ('fold', g), [r for x in g for r in x.ins]
      else:
        key, node, ins = id(e), ('eqn', e), e.ins
      if key in seen:
        continue
      seen.add(key)
      stack.append(('emit', node))
      stack.extend(('ref', r) for r in ins)
    return nodes

  def run(self, *args) -> tuple[list[Any], list[list[jax.Array]]]:
    """The program's outputs (None where `split` cuts them out of a batched draw) and the
    batched draws' exits, flat. Jittable."""
    env = dict(zip(self.prog.invars, args))
    env.update(self.prog.consts)
    flats = []
    for kind, item in self.nodes:
      if kind == 'eqn':
        params = item.prim.get_bind_params(item.params)
        outs = item.prim.bind(*(env[r] for r in item.ins), **params)
        env.update(zip(item.outs, outs if item.prim.multiple_results else [outs]))
      elif kind == 'fold':
        data = jnp.stack([env[e.ins[1]] for e in item]).astype(jnp.uint32)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(env[item[0].ins[0]], data)
        env.update((e.outs[0], keys[i]) for i, e in enumerate(item))
        env[('folded', id(item))] = jax.random.key_data(keys)  # the draws gather from it
      else:
        flats = self._draws(env)
    return [None if r in self.host else env[r] for r in self.prog.outvars], flats

  def split(self, outs: list[Any], flats: list[list[jax.Array]]) -> list[Any]:
    """`run`'s outputs, those cut out of the batched draws filled in. Host-side: splitting
    on the host keeps XLA from fusing a copy of the transform into every parameter's slice."""
    host = [[np.array(x) for x in group] for group in flats]  # copies, not device views
    for i, r in enumerate(self.prog.outvars):
      if r in self.host:
        g, p, at, n = self.host[r]
        outs[i] = jax.device_put(host[g][p][at:at + n].reshape(self.prog.avals[r].shape))
    return outs

  def _draws(self, env: dict) -> list[list[jax.Array]]:
    """Every batched draw, hashed at once, and each group's transform; returns each group's
    exits, flat, and puts the slices read inside the program into `env`."""
    draws = [c for g in self.groups for c in g]
    offsets = np.cumsum([0] + [c.size for c in draws])
    index = lax.iota(np.int32, int(offsets[-1]))
    seg = jnp.searchsorted(jnp.asarray(offsets[1:], np.int32), index, side='right')
    # Each element's key and counter are those its own draw would hash; the keys are gathered
    # from the batched fold_ins' outputs (slicing each key out would be a kernel per draw).
    sources, base, rows = [], {}, []
    for c in draws:
      f, i = self.folded.get(c.draw.ins[0], (None, 0))
      source = ('key', c.draw.ins[0]) if f is None else ('folded', id(self.folds[f]))
      if source not in base:
        base[source] = sum(len(x) for x in sources)
        sources.append(env[source] if f is not None else
                       jax.random.key_data(env[c.draw.ins[0]])[None])
      rows.append(base[source] + i)
    keys = jnp.concatenate(sources)[jnp.asarray(rows, np.int32)[seg]]
    counts = (index - jnp.asarray(offsets[:-1], np.int32)[seg]).astype(np.uint32)
    b1, b2 = threefry2x32_p.bind(keys[:, 0], keys[:, 1], jnp.zeros_like(counts), counts)
    bits, first, flats = b1 ^ b2, 0, []
    for group in self.groups:
      start, stop = int(offsets[first]), int(offsets[first + len(group)])
      exits = self._transform(group, bits[start:stop], seg[start:stop] - first, env)
      for c, at in zip(group, offsets[first:first + len(group)] - start):
        for x, r, inner in zip(exits, c.exit_refs, c.inner):
          if inner:
            env[r] = lax.slice(x, (int(at),), (int(at) + c.size,)).reshape(
                self.prog.avals[r].shape)
      flats.append(exits)
      first += len(group)
    return flats

  def _transform(self, group: list[_Chain], bits: jax.Array, seg: jax.Array,
                 env: dict) -> list[jax.Array]:
    """The group's chain of elementwise equations applied to all its draws' `bits` at once
    (`seg`: each element's draw in the group)."""
    first, values = group[0], {-1: bits}
    for j, e in enumerate(first.eqns):
      args = []
      for i, loc in enumerate(first.local[j]):
        if first.sides[j][i] is None:
          args.append(values[loc])
        else:
          refs = [c.sides[j][i] for c in group]
          args.append(self._side(refs, seg, env))
      values[j] = args[0] if e.prim.name in _FLAT_ORDER else e.prim.bind(*args, **e.params)
    return [values[i] for i in first.exits]

  def _side(self, refs: list[int], seg: jax.Array, env: dict) -> jax.Array:
    """A side input of a batched transform: one scalar, or each element's draw's."""
    keys = [self.canon.get(r, ('ref', r)) for r in refs]
    if all(k == keys[0] for k in keys):
      return jnp.reshape(env[refs[0]], ())
    return jnp.stack([jnp.reshape(env[r], ()) for r in refs])[seg]


def init_params(model: nn.Module, key: jax.Array, *example: Any,
                batch_draws: bool = True) -> Any:
  """`model.init(key, *example)` as one compiled program. Host-side driver (one compilation
  per call).

  The same variables, bit for bit, as Flax's eager `model.init` (the same primitives on the
  same keys, compiled without the rewrites that would round differently), at a fraction of its
  start-up: eager `init` compiles a program per primitive and shape (hundreds for a
  metanetwork), this one program, its draws batched (the module's docstring; measured by
  `benchmarks/startup.py`, bits checked by `tests/training/test_init.py`). An `init` that
  needs concrete values of `example` cannot be jitted: call `model.init` directly.

  Args:
    model: any Flax module.
    key: the `params` PRNG key (or a dict of keys per RNG stream, as `model.init` takes).
    *example: the example inputs `model.init` takes.
    batch_draws: batch the random draws (False: the plain `jax.jit(model.init)`).

  Returns:
    The variables `model.init(key, *example)` returns.
  """
  args = (key, *example)
  if batch_draws and jax.__version_info__[:2] >= _BATCHES_FROM:
    closed, shapes = jax.make_jaxpr(model.init, return_shape=True)(*args)
    plan = _Plan(_Program(closed))
    if plan.groups:
      lowered = jax.jit(plan.run).lower(*jax.tree.leaves(args))
      out = plan.split(*_compile(lowered)(*jax.tree.leaves(args)))
      return jax.tree.unflatten(jax.tree.structure(shapes), out)
    _LOG.info('init_params(%s): no batchable draws (%s); the plain jitted init',
              type(model).__name__, plan.unbatched_reason or 'no 32-bit threefry draws')
  elif batch_draws:
    _LOG.info('init_params: jax %s; the plain jitted init', jax.__version__)
  return _compile(jax.jit(model.init).lower(*args))(*args)


def _compile(lowered: jax.stages.Lowered) -> jax.stages.Compiled:
  try:
    return lowered.compile(compiler_options=_INIT_OPTIONS)
  except jax.errors.JaxRuntimeError:  # a backend without these XLA options
    return lowered.compile()

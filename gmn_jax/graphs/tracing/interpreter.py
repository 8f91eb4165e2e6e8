"""The jaxpr walker: environments, nested jaxprs, dispatch to the primitive families.
Host-side."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from gmn_jax.graphs.architecture import Architecture
from gmn_jax.graphs.probe import PointKey, subjaxpr
from gmn_jax.graphs.tracing.contractions import ContractionRules
from gmn_jax.graphs.tracing.elementwise import ElementwiseRules
from gmn_jax.graphs.tracing.shapes import ShapeRules
from gmn_jax.graphs.tracing.tables import TableRules
from gmn_jax.graphs.tracing.values import (UnsupportedModelError, Const, Param, Index, Table,
                                           Value, describe_const,
                                           UNARY, NARY, IDENTITY, REDUCTIONS, WINDOWED)


class Interpreter(ShapeRules, ElementwiseRules, ContractionRules, TableRules):
  """Walks a jaxpr, building the Architecture as it goes; nested jaxprs (`jit`, `remat`,
  `custom_jvp`/`custom_vjp` bodies) are walked in place. The primitive families live in the
  mixins."""

  def __init__(self, arch: Architecture):
    self.arch = arch
    self.attach_count: dict[int, int] = {}
    self.where = ''
    self.path: tuple[int, ...] = ()  # ids of the equations whose jaxprs enclose this one
    self.probe_points: dict[PointKey, tuple[int, np.ndarray]] = {}
    self.table_keys: dict[tuple[str, bytes], int] = {}  # see `TableRules.table_key_ids`
    self.table_events = 0

  # ---- errors -------------------------------------------------------------------------------

  def fail(self, what: str, eqn=None, param: Param | None = None) -> UnsupportedModelError:
    parts = [what]
    if eqn is not None:
      parts.append(f'primitive `{eqn.primitive.name}`')
    if self.where:
      parts.append(f'Flax module `{self.where}`')
    if param is not None:
      parts.append('parameters ' + ', '.join(self.param_paths(param)))
    return UnsupportedModelError(' | '.join(parts))

  def group_name(self, param: Param) -> str:
    """The Flax module path, or (nnx traces carry none) the weight's parameter path."""
    if self.where:
      return self.where
    path = self.param_paths(param)[0] if self.param_paths(param) else ''
    return path.removesuffix('.value').rsplit('[', 1)[0].replace("']['", '/').strip("[]'")

  def param_paths(self, param: Param) -> list[str]:
    paths = []
    for term in param.terms:
      flat = term[term >= 0]
      if flat.size:
        paths.append(self.arch.leaf_paths[self.arch.leaf_of(int(flat.ravel()[0]))])
    return paths

  # ---- driver -------------------------------------------------------------------------------

  def run(self, jaxpr, consts: list[Any], inputs: list[Value], prefix: str = '') -> list[Value]:
    """Interprets `jaxpr`; `prefix` is the module path of the equation that called it (name
    stacks inside a nested jaxpr are relative to it)."""
    env: dict[Any, Value] = {}

    def read(atom) -> Value:
      if hasattr(atom, 'val'):  # Literal
        return Const(np.asarray(atom.val))
      return env[atom]

    for var, const in zip(jaxpr.constvars, consts):
      env[var] = Const(np.asarray(const))
    for var, value in zip(jaxpr.invars, inputs):
      env[var] = value
    for eqn in jaxpr.eqns:
      own = str(eqn.source_info.name_stack)
      self.where = '/'.join(p for p in (prefix, own) if p)
      ins = [read(a) for a in eqn.invars]
      try:
        outs = self.equation(eqn, ins)
      except UnsupportedModelError:
        raise
      except Exception as e:  # pylint: disable=broad-except  (a rule that did not foresee it)
        param = next((v for v in ins if isinstance(v, Param)), None)
        raise self.fail(f'no graph rule handles this use ({type(e).__name__}: '
                        f'{str(e).splitlines()[0] if str(e) else ""})', eqn, param) from e
      for var, out in zip(eqn.outvars, outs):
        env[var] = out
    return [read(a) for a in jaxpr.outvars]

  def equation(self, eqn, ins: list[Value]) -> list[Value]:
    name = eqn.primitive.name
    if name in ('scan', 'while', 'cond') and not all(isinstance(v, Const) for v in ins):
      raise self.fail('a loop or branch over activations or parameters (`nn.scan` over layers, '
                      '`nn.RNN` cells, `lax.cond`) is not supported; unroll it (e.g. a Python '
                      'loop over the layers)', eqn, next((v for v in ins if isinstance(v, Param)),
                                                          None))
    sub = subjaxpr(eqn)
    if sub is not None:
      where, path = self.where, self.path
      self.path = path + (id(eqn),)
      outs = self.run(sub[0], sub[1], ins, prefix=where)
      self.where, self.path = where, path
      return outs
    if all(isinstance(v, Const) for v in ins):
      return self.evaluate(eqn, ins)
    if name in IDENTITY:
      return list(ins[:len(eqn.outvars)])
    if (name in ('gather', 'dynamic_slice') and isinstance(ins[0], Const)
        and any(isinstance(v, Index) for v in ins[1:])):
      return [self.gathered_table(eqn, ins)]
    if any(isinstance(v, Table) for v in ins) and not (
        name in UNARY or name in NARY or name == 'dot_general'):
      if name in REDUCTIONS or name in WINDOWED or name == 'conv_general_dilated':
        raise self.fail('a reduction or convolution of a constant table read at data-chosen '
                        'rows', eqn)
      return self.table_shape_op(eqn, ins)
    if name in UNARY or name in NARY:
      return [self.elementwise(eqn, ins)]
    if name == 'dot_general':
      return [self.dot_general(eqn, ins)]
    if name == 'conv_general_dilated':
      return [self.conv(eqn, ins)]
    if name in REDUCTIONS:
      return [self.reduction(eqn, ins[0])]
    if name in WINDOWED:
      return [self.windowed(eqn, ins)]
    if name == 'gather' and isinstance(ins[0], Param) and isinstance(ins[1], Index):
      return [self.embedding(eqn, ins[0], ins[1])]
    if name == 'gather' and isinstance(ins[1], Const) and self.is_table_lookup(eqn, ins[0]):
      # position ids built by the wrapper (`arange`): still a lookup in the whole table
      return [self.embedding(eqn, ins[0], Index(f'const{describe_const(ins[1].value)}'))]
    return self.shape_op(eqn, ins)

  def evaluate(self, eqn, ins: list[Const]) -> list[Value]:
    outs = eqn.primitive.bind(*[jnp.asarray(v.value) for v in ins], **eqn.params)
    outs = outs if eqn.primitive.multiple_results else [outs]
    return [Const(np.asarray(o)) for o in outs]

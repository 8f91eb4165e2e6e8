"""Constant tables read at rows chosen by integer inputs: rotary tables gathered by position
ids (Llama, Gemma, Mistral, GPT-J), sinusoidal position tables gathered by positions (Marian,
Pegasus, XGLM). Host-side.

Which rows are read depends on the input, but the columns do not: at every row, a column of
the table meets the same neurons. So each element of the gathered value is keyed by the whole
column it reads (its values at every row) and by the index entry that chose its row; two
elements with one key hold the same value for every input. Neurons that meet different keys
are told apart exactly as neurons that meet different constants are (`distinguish_by`).
Elementwise functions of tables and constants stay tables (their keys combine); anything else
done to a table is refused.
"""

from __future__ import annotations

import numpy as np

from gmn_jax.graphs.tracing.values import Const, Index, Table, Value, describe_const


class TableRules:
  """Interprets gathers of constants by integer inputs (a mixin of `Interpreter`)."""

  def table_key_ids(self, tag: str, rows: np.ndarray) -> np.ndarray:
    """Global keys of `rows` ([n, k]): equal rows under one tag share a key, other rows and
    other tags never do. Keys are handed out in sorted row order (independent of neuron order).

    Returns:
      [n] int64 keys.
    """
    rows = np.ascontiguousarray(np.asarray(rows, np.float64).reshape(len(rows), -1))
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    ids = np.array([self.table_keys.setdefault((tag, row.tobytes()), len(self.table_keys))
                    for row in unique], np.int64)
    return ids[np.ravel(inverse)]

  def gathered_table(self, eqn, ins: list[Value]) -> Table:
    """`table[rows]` for a constant `table` and rows chosen by integer inputs (`gather`, or a
    `dynamic_slice` whose start indices depend on them)."""
    name, p = eqn.primitive.name, eqn.params
    table = np.asarray(ins[0].value)
    if name == 'gather':
      dn = p['dimension_numbers']
      if getattr(dn, 'operand_batching_dims', ()):
        raise self.fail('a batched gather from a constant table by integer inputs', eqn)
      axes = list(dn.start_index_map)
    else:
      axes = [a for a, v in enumerate(ins[1:]) if isinstance(v, Index)]
    others = [a for a in range(table.ndim) if a not in axes]
    # The key of a column: all its values along the axes the indices choose along.
    fibres = np.transpose(table, others + axes).reshape(
        int(np.prod([table.shape[a] for a in others], dtype=np.int64)), -1)
    self.table_events += 1
    columns = self.table_key_ids(f'column{self.table_events}', fibres)
    columns = np.transpose(
        np.broadcast_to(columns.reshape([table.shape[a] for a in others] + [1] * len(axes)),
                        [table.shape[a] for a in others + axes]),
        np.argsort(others + axes))
    zeros = [Const(np.zeros(var.aval.shape, var.aval.dtype)) if isinstance(v, Index) else v
             for v, var in zip(ins[1:], eqn.invars[1:])]
    keys = self.move(eqn, [columns], [ins[0], *zeros])[0]  # keys are the same on every row
    shape = tuple(eqn.outvars[0].aval.shape)
    if name == 'gather':  # the index entry that chose the row: its coordinates in the output
      batch = [a for a in range(len(shape)) if a not in p['dimension_numbers'].offset_dims]
      coord = np.zeros(shape, np.int64)
      for a in batch:
        coord = coord * shape[a] + np.arange(shape[a]).reshape(
            [-1 if d == a else 1 for d in range(len(shape))])
      keys = self.table_key_ids(f'row{self.table_events}',
                                np.stack([keys.ravel(), coord.ravel()], 1)).reshape(shape)
    return Table(keys, f'table[{describe_const(table)}]')

  def table_elementwise(self, eqn, ins: list[Value], op: str | None) -> Table:
    """An elementwise function of tables and constants: a table whose keys combine the
    operands' keys and constant values element by element."""
    shape = tuple(eqn.outvars[0].aval.shape)
    tables = [v for v in ins if isinstance(v, Table)]
    if op is None:
      return Table(np.broadcast_to(tables[0].keys, shape), tables[0].program)
    columns = [np.broadcast_to(v.keys if isinstance(v, Table) else np.asarray(v.value),
                               shape).ravel() for v in ins]
    pattern = ''.join('t' if isinstance(v, Table) else 'c' for v in ins)
    keys = self.table_key_ids(f'{op}:{pattern}', np.stack(columns, 1)).reshape(shape)
    args = ','.join(v.program if isinstance(v, Table) else describe_const(v.value) for v in ins)
    return Table(keys, f'{op}({args})')

  def table_shape_op(self, eqn, ins: list[Value]) -> list[Table]:
    """Reshapes, slices, concatenations of tables (and constants) move the keys as values."""
    name = eqn.primitive.name
    joins = name in ('concatenate', 'stack')
    operands = ins if joins else ins[:1]
    if any(isinstance(v, Index) for v in ins) or (not joins and any(
        not isinstance(v, Const) for v in ins[1:])):
      raise self.fail('a constant table read at data-chosen rows, moved by data-dependent '
                      'indices', eqn)
    keys = []
    for v in operands:
      if isinstance(v, Table):
        keys.append(v.keys)
      else:  # a constant beside a table: keyed by its value
        value = np.asarray(v.value)
        keys.append(self.table_key_ids('constant', value.reshape(-1, 1)).reshape(value.shape))
    moved = self.move(eqn, keys, ins)
    program = next(v.program for v in ins if isinstance(v, Table))
    return [Table(np.asarray(m, np.int64), program) for m in moved]

"""Where a metanetwork's train step spends its time: XLA's own per-operation trace, grouped.

Builds the train step of `benchmarks/train_step.py` (Small CNN Zoo graphs, batch 32, AdamW)
for one metanetwork and width, runs a few steps under `jax.profiler.trace` and sums the
duration of every compiled operation (fusions, dots, scatters; XLA's thunks on CPU), per step:

- by piece of the model: input encoder, message-passing layers, readout, optimizer; forward
  (`jvp`) and backward (`transpose`) separately, read from each operation's `op_name`;
- by the size of its output: edge-sized (`[n_edge, ...]`), node-sized, other;
- by kind of operation (XLA's fusion name stem: `dot`, `wrapped_scatter`, `ynn_fusion`, ...);
- the largest single operations, with their `op_name`.

The sums are of operation durations, so on 2 cores two operations running at once both count;
under load every duration stretches. Compare pieces within one run, not runs.

    python benchmarks/step_profile.py gmn 32
    python benchmarks/step_profile.py nggnn 32 --top 30
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import sys
import tempfile

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  pylint: disable=wrong-import-position

import gmn_jax  # noqa: E402  pylint: disable=wrong-import-position

_PIECES = {'encoder': 'encoder', 'layer_': 'layers', 'layers': 'layers', 'readout': 'readout',
           'final_': 'final norms'}


def _model(name: str, h: int):
  if name == 'gmn':
    return gmn_jax.GMN(node_dim=h, edge_dim=h, num_layers=4, readout_hidden=h)
  if name == 'nggnn':
    return gmn_jax.NGGNN(hidden_dim=h, num_layers=4, readout_hidden=h)
  if name == 'ngt':
    return gmn_jax.NGT(node_dim=h, edge_dim=h, num_layers=4, num_heads=min(8, h),
                       readout_hidden=h)
  if name == 'scalegmn':
    return gmn_jax.ScaleGMN(hidden_dim=h, num_layers=4, readout_hidden=h)
  raise ValueError(f'unknown metanetwork {name!r}')


def _hlo_ops(text: str) -> dict[str, tuple[str, str]]:
  """`{instruction name: (output shape, op_name metadata)}` of a compiled module's text."""
  ops = {}
  for line in text.split('\n'):
    m = re.match(r'\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ', line)
    if m:
      meta = re.search(r'op_name="([^"]*)"', line)
      ops[m.group(1)] = (m.group(2), meta.group(1) if meta else '')
  return ops


def _piece(op_name: str) -> str:
  direction = 'backward' if 'transpose(' in op_name else 'forward'
  for key, piece in _PIECES.items():
    if f'/{key}' in op_name or f'.{key}' in op_name:
      return f'{piece} {direction}'
  return 'optimizer, loss, other'


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('model', choices=['gmn', 'nggnn', 'ngt', 'scalegmn'])
  parser.add_argument('hidden', type=int)
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--steps', type=int, default=3, help='traced steps')
  parser.add_argument('--top', type=int, default=20, help='largest operations to list')
  args = parser.parse_args()

  pg, graphs = train_step.small_cnn_zoo(args.batch)
  budget = gmn_jax.budget_for(pg, args.batch)
  batch = gmn_jax.batch(graphs, budget)
  y = np.random.default_rng(0).uniform(size=budget.n_graph).astype(np.float32)
  model = _model(args.model, args.hidden)
  step, params, state = train_step.train_step(model, batch)

  compiled = jax.jit(step).lower(params, state, batch, y).compile()
  ops = _hlo_ops(compiled.as_text())
  for _ in range(2):
    jax.block_until_ready(compiled(params, state, batch, y))
  with tempfile.TemporaryDirectory() as trace_dir:
    with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
      for _ in range(args.steps):
        jax.block_until_ready(compiled(params, state, batch, y))
    path = glob.glob(f'{trace_dir}/**/*.trace.json.gz', recursive=True)[0]
    with gzip.open(path) as f:
      trace = json.load(f)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace

  per_op, by_piece, by_size, by_kind = (collections.Counter() for _ in range(4))
  for event in events:
    name = event.get('name', '')
    if event.get('ph') != 'X' or name not in ops:
      continue
    ms = event.get('dur', 0) / 1e3 / args.steps
    shape, op_name = ops[name]
    per_op[name] += ms
    by_piece[_piece(op_name)] += ms
    lead = re.match(r'\w+\[(\d+)', shape)
    rows = int(lead.group(1)) if lead else 0
    by_size['edge-sized' if rows == budget.n_edge else
            'node-sized' if rows == budget.n_node else 'other'] += ms
    by_kind[re.sub(r'[.\d]+$', '', name)] += ms

  total = sum(per_op.values())
  print(f'{args.model} hidden {args.hidden}, batch {args.batch} ({budget.n_node} nodes, '
        f'{budget.n_edge} edges): {total:.1f} ms of operations per step, '
        f'load average {os.getloadavg()[0]:.1f}')
  for title, counter, n in (('by piece', by_piece, 10), ('by output size', by_size, 3),
                            ('by kind', by_kind, 12)):
    print(f'--- {title}')
    for key, ms in counter.most_common(n):
      print(f'{ms:9.1f} ms {100 * ms / total:5.1f}%  {key}')
  print('--- largest operations')
  for key, ms in per_op.most_common(args.top):
    shape, op_name = ops[key]
    print(f'{ms:9.2f} ms  {key:28s} {shape[:24]:24s} {op_name[-80:]}')


if __name__ == '__main__':
  main()

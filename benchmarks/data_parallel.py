"""`fit`'s data-parallel train step on 1 and on 4 devices at the same global batch.

    python benchmarks/data_parallel.py                  # GMN and NG-GNN, hidden 32, batch 32
    python benchmarks/data_parallel.py --devices 2 --models gmn --steps 4

The step is the one `fit` compiles (`gmn_jax.training.fit.make_train_step`: sigmoid-MSE on the
graph readout, AdamW with clipping, forward + backward + update) on batches of Small CNN Zoo
graphs (`benchmarks/train_step.py`, 688 edges each). One device: the whole batch, no mesh
(what `fit` runs without one). N devices: the same graphs split into N sub-batches of whole
graphs, one per device of a `'data'` mesh (what `fit(..., mesh=make_mesh())` runs). Both run
in this one process, which starts with N simulated CPU devices
(`--xla_force_host_platform_device_count`, set here before JAX starts), so the ratios compare
runs on the same cores in the same sitting. On a CPU the simulated devices share the host's
cores, so N devices cannot be faster than the cores allow: the ratio measures the overhead of
splitting, not a speed-up.

Printed per model: step time (median), XLA's per-device memory plan (arguments + outputs +
temporaries of one device's program, `memory_analysis`), both as ratios of one device's; the
collectives in the compiled N-device program and how many sit inside a loop body; and the
loss and updated parameters of the two steps against each other.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_ARGS = argparse.ArgumentParser(description=__doc__.split('\n')[0])
_ARGS.add_argument('--devices', type=int, default=4)
_ARGS.add_argument('--batch', type=int, default=32, help='global batch (graphs)')
_ARGS.add_argument('--hidden', type=int, default=32)
_ARGS.add_argument('--layers', type=int, default=4)
_ARGS.add_argument('--models', default='gmn,nggnn')
_ARGS.add_argument('--steps', type=int, default=8, help='timed steps per configuration')

if __name__ == '__main__':
  _N = _ARGS.parse_args().devices
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                             + f' --xla_force_host_platform_device_count={_N}')

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import optax  # pylint: disable=g-import-not-at-top,wrong-import-position

import gmn_jax  # pylint: disable=g-import-not-at-top,wrong-import-position
from gmn_jax import mesh as mesh_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from gmn_jax.training.fit import make_train_step  # pylint: disable=g-import-not-at-top

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import small_cnn_zoo  # pylint: disable=g-import-not-at-top,wrong-import-position

def split_batch(graphs: list, targets: np.ndarray, shards: int, pg):
  """`shards` padded sub-batches of whole graphs, stacked `[shards, ...]`; targets and mask
  `[shards, n_graph]` (host arrays)."""
  per = len(graphs) // shards
  budget = gmn_jax.budget_for(pg, per)
  parts = [gmn_jax.batch(graphs[i * per:(i + 1) * per], budget) for i in range(shards)]
  t = np.zeros((shards, budget.n_graph), np.float32)
  mask = np.zeros((shards, budget.n_graph), bool)
  for i in range(shards):
    t[i, :per], mask[i, :per] = targets[i * per:(i + 1) * per], True
  return jax.tree.map(lambda *a: np.stack(a), *parts), t, mask


def plan_bytes(compiled) -> float:
  """Arguments + outputs + temporaries of one device's program (aliased bytes once)."""
  m = compiled.memory_analysis()
  return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
          - m.alias_size_in_bytes)


def run(model, tx, params, args_for: dict, steps: int) -> dict:
  """Compiles and times the step for each device count; returns per-count results."""
  out = {}
  for shards, (mesh, inputs) in args_for.items():
    step = make_train_step(model, tx, mesh=mesh)
    state = (params, tx.init(params))
    if mesh is not None:
      state = mesh_lib.place_state(state, mesh)
    compiled = step.lower(*state, *inputs).compile()
    result = compiled(*state, *inputs)
    jax.block_until_ready(result)
    walls = []
    for _ in range(steps):
      tic = time.perf_counter()
      jax.block_until_ready(compiled(*state, *inputs))
      walls.append(time.perf_counter() - tic)
    out[shards] = {'step_s': float(np.median(walls)), 'plan': plan_bytes(compiled),
                   'collectives': mesh_lib.collectives(compiled),
                   'loss': float(result[2]), 'params': jax.device_get(result[0])}
  return out


def main() -> None:
  args = _ARGS.parse_args()
  n = args.devices
  assert jax.device_count() == n, jax.devices()
  print(f'jax {jax.__version__}, {len(os.sched_getaffinity(0))} CPU cores, {n} simulated '
        f'devices, load average {os.getloadavg()[0]:.1f}; global batch {args.batch}')
  pg, graphs = small_cnn_zoo(args.batch)
  targets = np.random.default_rng(0).uniform(size=args.batch).astype(np.float32)
  one_graphs, one_t, one_mask = jax.tree.map(lambda a: a[0],
                                             split_batch(graphs, targets, 1, pg))
  mesh = gmn_jax.make_mesh(data=n)
  args_for = {1: (None, (one_graphs, one_t, one_mask)),
              n: (mesh, mesh_lib.place_batch(split_batch(graphs, targets, n, pg), mesh))}
  tx = optax.chain(optax.clip_by_global_norm(10.0), optax.adamw(1e-3, weight_decay=5e-4))
  h, layers = args.hidden, args.layers
  models = {'gmn': (f'GMN hidden {h}, {layers} layers',
                    gmn_jax.GMN(node_dim=h, edge_dim=h, num_layers=layers, readout_hidden=h)),
            'nggnn': (f'NG-GNN hidden {h}, {layers} layers',
                      gmn_jax.NGGNN(hidden_dim=h, num_layers=layers, readout_hidden=h))}
  header = (f'{"metanetwork":28s} {"devices":>7s} {"step ms":>8s} {"step / 1":>8s} '
            f'{"plan MiB/dev":>12s} {"plan / 1":>8s} {"collectives (in loops)":>22s} '
            f'{"loss":>9s} {"max |Δparam|":>12s}')
  print(header)
  print('-' * len(header))
  for key in args.models.split(','):
    label, model = models[key]
    params = jax.jit(model.init)(jax.random.key(0), one_graphs)
    res = run(model, tx, params, args_for, args.steps)
    base = res[1]
    for shards, r in res.items():
      diff = max(float(np.max(np.abs(a - b))) for a, b in
                 zip(jax.tree.leaves(r['params']), jax.tree.leaves(base['params'])))
      total, inside, _ = r['collectives']
      print(f'{label:28s} {shards:>7d} {1e3 * r["step_s"]:>8.1f} '
            f'{r["step_s"] / base["step_s"]:>8.2f} {r["plan"] / 2 ** 20:>12.1f} '
            f'{r["plan"] / base["plan"]:>8.2f} {f"{total} ({inside})":>22s} '
            f'{r["loss"]:>9.6f} {diff:>12.2e}', flush=True)
  print(f'load average after: {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
  main()

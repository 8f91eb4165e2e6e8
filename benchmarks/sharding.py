"""Peak memory and time of GMN forward + backward on one large graph, on 1 and on 4 devices.

    python benchmarks/sharding.py                      # 1M, 4M, 16M, 32M edges; 1 and 4 devices
    python benchmarks/sharding.py --edges 1e6 --devices 1 4   # a quick run
    python benchmarks/sharding.py --plan-only  # compile only: XLA's memory plan, no step run
    python benchmarks/sharding.py --chunk 0    # all edges at once (no edge blocks)
    python benchmarks/sharding.py --resnet50 --devices 1   # ResNet-50's parameter graph

The graph is an MLP's parameter graph (a chain of square Dense layers, one edge per weight)
with about the requested number of edges, or with `--resnet50` a ResNet-50's (BatchNorm,
bottleneck blocks; conv kernels are edges with K = kernel positions). GMN (hidden 32, two
layers, edge updates, the edges streamed in blocks of `--chunk` edges per device,
`GMN(edge_chunk=...)`, `gmn_jax.metanets.edge_chunks`: no edge-sized activation is kept;
with `--chunk 0` the one-pass edge pass under `remat_layers=True`) reads it; one jitted step
computes the loss (the mean of the graph prediction) and its gradient with respect to GMN's
parameters. With 4 devices the edge axis is split over a 4-device mesh
(`gmn_jax.metanets.sharded.shard_edges`) and each device scans its own edges
(`GMN(edge_shards=4)` under `jax.set_mesh`); on this CPU the devices are simulated
(`--xla_force_host_platform_device_count`), so they share the host's memory and cores: the
per-device figure is XLA's own buffer plan (`memory_analysis`: arguments + temps of one
device's program).

Each graph size runs in a fresh subprocess with as many simulated devices as the largest
count, and every device count runs in it one after the other, so the printed ratios (step time
and plan per device against the first count's) compare runs on the same cores in the same
sitting; the loss and gradient norm of each row are printed beside the first's. The RSS column
is the process's peak so far (cumulative over its rows); a size that runs out of memory is
reported as such and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

_GIB = 2.0 ** 30


def _graph(n_edges: int):
  """(one graph of an MLP with ~n_edges weights, or of a ResNet-50 for n_edges=0, its
  ParameterGraph), host-side."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import gmn_jax

  if not n_edges:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _resnet50 import ResNet50  # pylint: disable=g-import-not-at-top
    model, x = ResNet50(), jnp.ones((1, 224, 224, 3))
    variables = jax.jit(model.init)(jax.random.key(0), x)
    pg = gmn_jax.trace(model, variables, x)
    return jax.device_get(pg.encode(variables)), pg

  layers = 4
  width = max(8, int(round((n_edges / layers) ** 0.5)))

  class Chain(nn.Module):
    @nn.compact
    def __call__(self, x):
      for _ in range(layers - 1):
        x = nn.relu(nn.Dense(width)(x))
      return nn.Dense(width)(x)

  model, x = Chain(), jnp.zeros((1, width))
  variables = jax.jit(model.init)(jax.random.key(0), x)
  pg = gmn_jax.trace(model, variables, x)
  graph = jax.device_get(pg.encode(variables))
  return graph, pg


def _run(n_edges: int, devices: int, hidden: int, layers: int, chunk: int,
         plan_only: bool, graph=None) -> dict:
  """One (edges, devices) row, in this process (which has at least `devices` devices)."""
  import jax
  import jax.numpy as jnp
  import gmn_jax
  from gmn_jax.metanets.edge_chunks import round_edges
  from gmn_jax.metanets.sharded import shard_edges

  graph, pg = graph or _graph(n_edges)
  budget = gmn_jax.budget_for(pg, 1, multiple=8 * devices)
  if chunk:
    budget = round_edges(budget, chunk * devices)
  graph = gmn_jax.batch([graph], budget)
  model = gmn_jax.GMN(node_dim=hidden, edge_dim=hidden, num_layers=layers,
                      readout_hidden=hidden, remat_layers=True, edge_chunk=chunk,
                      edge_shards=devices)
  params = jax.jit(model.clone(edge_shards=1).init)(jax.random.key(0), graph)
  mesh = gmn_jax.make_mesh(data=devices, devices=jax.devices()[:devices])
  if devices > 1:
    graph = shard_edges(graph, mesh)
    params = gmn_jax.mesh.replicate(params, mesh)

  def loss(p, g):
    return jnp.mean(model.apply(p, g).globals[:1])

  step = jax.jit(jax.value_and_grad(loss))
  with jax.set_mesh(mesh):  # edge_shards > 1: the mesh the edge scans run on
    tic = time.perf_counter()
    compiled = step.lower(params, graph).compile()
  compile_s = time.perf_counter() - tic
  plan = compiled.memory_analysis()
  result = {'edges': int(budget.n_edge), 'devices': devices, 'compile_s': compile_s,
            'device_plan_gib': (plan.argument_size_in_bytes + plan.temp_size_in_bytes) / _GIB}
  if plan_only:
    return result
  value, grads = compiled(params, graph)
  jax.block_until_ready(grads)
  walls = []
  for _ in range(3):
    tic = time.perf_counter()
    value, grads = compiled(params, graph)
    jax.block_until_ready(grads)
    walls.append(time.perf_counter() - tic)
  return {**result, 'step_s': float(sorted(walls)[1]), 'loss': float(value),
          'grad_norm': float(optax_global_norm(grads)),
          'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _GIB}


def optax_global_norm(tree) -> float:
  """The gradient's global norm (host-side), to compare the rows' gradients."""
  import jax
  import numpy as np
  return float(np.sqrt(sum(np.sum(np.square(np.asarray(a))) for a in jax.tree.leaves(tree))))


def _child(n_edges: int, devices: list[int], args) -> list[dict]:
  """All device counts of one graph, in this one process (the same graph, the same cores)."""
  graph = _graph(n_edges)
  return [_run(n_edges, d, args.hidden, args.layers, args.chunk, args.plan_only, graph)
          for d in devices]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--edges', type=float, nargs='+', default=[1e6, 4e6, 16e6, 32e6])
  parser.add_argument('--devices', type=int, nargs='+', default=[1, 4])
  parser.add_argument('--hidden', type=int, default=32)
  parser.add_argument('--layers', type=int, default=2)
  parser.add_argument('--chunk', type=int, default=2 ** 18,
                      help='edges per block and device (0: all edges at once)')
  parser.add_argument('--plan-only', action='store_true',
                      help="compile only and print XLA's per-device memory plan")
  parser.add_argument('--resnet50', action='store_true',
                      help="ResNet-50's parameter graph instead of the --edges MLPs")
  parser.add_argument('--child', type=float, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child is not None:
    print(json.dumps(_child(int(args.child), args.devices, args)))
    return
  edges = (f'edges streamed in blocks of {args.chunk}' if args.chunk
           else 'one-pass edges, remat')
  print(f'GMN hidden {args.hidden}, {args.layers} layers, {edges}; forward + backward, one graph;'
        f' load average {os.getloadavg()[0]:.1f}')
  print(f'{"edges":>11} {"devices":>7} {"compile s":>9} {"step s":>8} '
        f'{"plan/device GiB":>15} {"step / 1 dev":>12} {"plan / 1 dev":>12} {"RSS GiB":>8}')
  for n_edges in [0] if args.resnet50 else args.edges:  # 0: ResNet-50
    # One process per graph size, with as many (simulated) devices as the largest count:
    # every device count runs there, so the ratios compare runs on the same cores.
    env = dict(os.environ,
               XLA_FLAGS=f'--xla_force_host_platform_device_count={max(args.devices)}')
    run = subprocess.run([sys.executable, __file__, '--child', str(n_edges), '--devices',
                          *map(str, args.devices), '--hidden', str(args.hidden), '--layers',
                          str(args.layers), '--chunk', str(args.chunk)]
                         + (['--plan-only'] if args.plan_only else []),
                         env=env, capture_output=True, text=True)
    label = f'{int(n_edges):,}' if n_edges else 'ResNet-50'
    if run.returncode:
      why = 'out of memory' if run.returncode in (-9, 137) else run.stderr.strip()[-300:]
      print(f'{label:>11} failed: {why}')
      continue
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    base = rows[0]
    for r in rows:
      ran = 'step_s' in r
      step = f'{r["step_s"]:>8.2f}' if ran else f'{"-":>8}'
      ratio = f'{r["step_s"] / base["step_s"]:>12.2f}' if ran else f'{"-":>12}'
      rss = f'{r["peak_rss_gib"]:>8.2f}' if ran else f'{"-":>8}'
      print(f'{r["edges"]:>11,} {r["devices"]:>7} {r["compile_s"]:>9.1f} {step} '
            f'{r["device_plan_gib"]:>15.2f} {ratio} '
            f'{r["device_plan_gib"] / base["device_plan_gib"]:>12.2f} {rss}', flush=True)
      if ran and r is not base:
        print(f'{"":>11} loss {r["loss"]:.6g} vs {base["loss"]:.6g}, gradient norm '
              f'{r["grad_norm"]:.6g} vs {base["grad_norm"]:.6g}')


if __name__ == '__main__':
  main()

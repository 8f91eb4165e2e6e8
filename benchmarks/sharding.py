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
parameters. With 4 devices the edge axis is
split over a 4-device mesh (`gmn_jax.metanets.sharded.shard_edges`); on this CPU the devices
are simulated (`--xla_force_host_platform_device_count`), so they share the host's memory and
cores: the per-device figure is XLA's own buffer plan (`memory_analysis`: arguments + temps of
one device's program), and the process peak RSS is what the host really used.

Each (edges, devices) pair runs in a fresh subprocess, so its peak RSS is its own; a pair that
runs out of memory is reported as such and the others still run.
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
         plan_only: bool) -> dict:
  import jax
  import jax.numpy as jnp
  import gmn_jax
  from gmn_jax.metanets.edge_chunks import round_edges
  from gmn_jax.metanets.sharded import shard_edges

  graph, pg = _graph(n_edges)
  budget = gmn_jax.budget_for(pg, 1, multiple=8 * devices)
  if chunk:
    budget = round_edges(budget, chunk * devices)
  graph = gmn_jax.batch([graph], budget)
  del pg
  model = gmn_jax.GMN(node_dim=hidden, edge_dim=hidden, num_layers=layers,
                      readout_hidden=hidden, remat_layers=True, edge_chunk=chunk,
                      edge_shards=devices)
  params = jax.jit(model.init)(jax.random.key(0), graph)
  if devices > 1:
    mesh = gmn_jax.make_mesh(data=devices, devices=jax.devices()[:devices])
    graph = shard_edges(graph, mesh)
    params = gmn_jax.mesh.replicate(params, mesh)

  def loss(p, g):
    return jnp.mean(model.apply(p, g).globals[:1])

  step = jax.jit(jax.value_and_grad(loss))
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
  tic = time.perf_counter()
  value, grads = compiled(params, graph)
  jax.block_until_ready(grads)
  return {**result, 'step_s': time.perf_counter() - tic, 'loss': float(value),
          'peak_rss_gib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / _GIB}


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
  parser.add_argument('--child', nargs=2, type=float, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    print(json.dumps(_run(int(args.child[0]), int(args.child[1]), args.hidden, args.layers,
                          args.chunk, args.plan_only)))
    return
  edges = (f'edges streamed in blocks of {args.chunk}' if args.chunk
           else 'one-pass edges, remat')
  print(f'GMN hidden {args.hidden}, {args.layers} layers, {edges}; forward + backward, one graph')
  print(f'{"edges":>11} {"devices":>7} {"compile s":>9} {"step s":>8} '
        f'{"plan/device GiB":>15} {"peak RSS GiB":>12}')
  for n_edges in [0] if args.resnet50 else args.edges:  # 0: ResNet-50
    for devices in args.devices:
      env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}')
      run = subprocess.run([sys.executable, __file__, '--child', str(n_edges), str(devices),
                            '--hidden', str(args.hidden), '--layers', str(args.layers),
                            '--chunk', str(args.chunk)]
                           + (['--plan-only'] if args.plan_only else []),
                           env=env, capture_output=True, text=True)
      if run.returncode:
        why = 'out of memory' if run.returncode in (-9, 137) else run.stderr.strip()[-300:]
        label = f'{int(n_edges):,}' if n_edges else 'ResNet-50'
        print(f'{label:>11} {devices:>7} failed: {why}')
        continue
      r = json.loads(run.stdout.strip().splitlines()[-1])
      ran = (f'{r["step_s"]:>8.2f}', f'{r["peak_rss_gib"]:>12.2f}') if 'step_s' in r else (
          f'{"-":>8}', f'{"(not run)":>12}')
      print(f'{r["edges"]:>11,} {devices:>7} {r["compile_s"]:>9.1f} {ran[0]} '
            f'{r["device_plan_gib"]:>15.2f} {ran[1]}', flush=True)


if __name__ == '__main__':
  main()

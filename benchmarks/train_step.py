"""Train-step throughput of GMN, NG-GNN, NG-T and ScaleGMN on Small CNN Zoo graphs.

The Small CNN Zoo architecture (Unterthiner et al. 2020): three 3x3 convolutions of 16
channels (stride 2, relu), global average pooling and a 10-way dense layer on 28x28x1 inputs:
4,970 parameters, 59 neurons, 688 edges. A random zoo of such networks is encoded, batched
32 at a time (padded to a fixed budget) and each metanetwork trains on it with AdamW (weight
decay 5e-4, gradient clipping 10, as in neural graphs): forward, backward and optax update
in one jitted step.

For each metanetwork and size it prints graphs/s, the compile time (separately), the step's
FLOPs from XLA's cost analysis, and the achieved FLOP/s as a fraction of a large float32
matmul's FLOP/s measured in the same process (what this CPU can do), and ScaleGMN's graphs/s
as a ratio of GMN's at the same width.

    python benchmarks/train_step.py            # hidden 32 and 256, ~2-3 minutes on 2 cores
    python benchmarks/train_step.py --quick    # smoke run: 1-layer width-8 models, batch 4
"""

from __future__ import annotations

import argparse
import os
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import gmn_jax


class SmallCNN(nn.Module):
  """The Small CNN Zoo network (grayscale layout): 4,970 parameters."""

  @nn.compact
  def __call__(self, x):
    for _ in range(3):
      x = nn.relu(nn.Conv(16, (3, 3), strides=(2, 2), padding='VALID')(x))
    return nn.Dense(10)(jnp.mean(x, axis=(1, 2)))


def _key(seed: int) -> jax.Array:
  """A random key whose generator compiles fast on CPU (threefry costs seconds per model)."""
  return jax.random.key(seed, impl='unsafe_rbg')


def small_cnn_zoo(n: int, seed: int = 0):
  """(template, list of n encoded graphs) of randomly initialised Small CNNs."""
  model = SmallCNN()
  x = jnp.zeros((1, 28, 28, 1))
  variables = jax.jit(model.init)(_key(seed), x)
  pg = gmn_jax.trace(model, variables, x)
  n_params = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(variables))
  assert n_params == 4970 and pg.n_node == 59, (n_params, pg)
  keys = jax.random.split(_key(seed + 1), n)
  zoo = jax.vmap(lambda k: model.init(k, x))(keys)
  stacked = gmn_jax.with_scaling_kinds(jax.device_get(jax.vmap(pg.encode)(zoo)), pg)
  graphs = [jax.tree_util.tree_map(lambda a, i=i: a[i], stacked) for i in range(n)]
  return pg, graphs


def matmul_flops_per_second(n: int = 2048, repeats: int = 5) -> float:
  """FLOP/s of a float32 [n, n] x [n, n] matmul (best of `repeats`)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
  f = jax.jit(jnp.matmul)
  f(a, b).block_until_ready()
  best = np.inf
  for _ in range(repeats):
    start = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  return float(cost.get('flops', float('nan'))) if cost else float('nan')


def train_step(model: nn.Module, example):
  """`(step, params, opt_state)`: the benchmarked step (sigmoid-MSE on the graph readout,
  AdamW with weight decay 5e-4 and clipping 10, as in neural graphs), not yet jitted, and its
  initial state for graphs shaped like `example`."""
  params = jax.jit(model.init)(_key(0), example)
  tx = optax.chain(optax.clip_by_global_norm(10.0), optax.adamw(1e-3, weight_decay=5e-4))

  def loss_fn(p, graphs, y):
    pred = model.apply(p, graphs).globals[:, 0]
    mask = gmn_jax.graph_mask(graphs)
    return jnp.sum(jnp.where(mask, (jax.nn.sigmoid(pred) - y) ** 2, 0)) / jnp.sum(mask)

  def step(p, state, graphs, y):
    loss, grads = jax.value_and_grad(loss_fn)(p, graphs, y)
    updates, state = tx.update(grads, state, p)
    return optax.apply_updates(p, updates), state, loss

  return step, params, tx.init(params)


def benchmark(name: str, model: nn.Module, batches, targets, steps: int) -> dict:
  """Compiles one train step and times `steps` of it over the batches."""
  step, params, opt_state = train_step(model, batches[0])
  start = time.perf_counter()
  lowered = jax.jit(step, donate_argnums=(0, 1)).lower(params, opt_state, batches[0], targets[0])
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  flops = _flops(compiled)
  params, opt_state, loss = compiled(params, opt_state, batches[0], targets[0])  # warm-up
  loss.block_until_ready()
  walls, cpus = [], []
  for i in range(steps):
    start, cpu = time.perf_counter(), time.process_time()
    params, opt_state, loss = compiled(params, opt_state, batches[i % len(batches)],
                                       targets[i % len(batches)])
    loss.block_until_ready()
    walls.append(time.perf_counter() - start)
    cpus.append(time.process_time() - cpu)
  n_params = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(params))
  # The median step: robust to other processes taking the CPU for a moment.
  return dict(name=name, compile_s=compile_s, step_s=float(np.median(walls)),
              cores=float(np.sum(cpus) / np.sum(walls)), flops=flops, n_params=n_params,
              loss=float(loss))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true', help='tiny models, 2 steps')
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--steps', type=int, default=0, help='timed steps (default by size)')
  parser.add_argument('--sizes', default='32,256', help='comma-separated hidden sizes')
  parser.add_argument('--models', default='gmn,nggnn,ngt,scalegmn')
  args = parser.parse_args()
  sizes = [8] if args.quick else [int(s) for s in args.sizes.split(',')]
  layers = 1 if args.quick else 4
  if args.quick:
    args.batch = min(args.batch, 4)

  print(f'jax {jax.__version__} on {jax.devices()[0].platform}, '
        f'{len(os.sched_getaffinity(0))} CPU cores, load average {os.getloadavg()[0]:.1f}')
  n_batches = 2 if args.quick else 4
  pg, graphs = small_cnn_zoo(args.batch * n_batches)
  budget = gmn_jax.budget_for(pg, args.batch)
  batches = [gmn_jax.batch(graphs[i * args.batch:(i + 1) * args.batch], budget)
             for i in range(n_batches)]
  rng = np.random.default_rng(0)
  targets = [rng.uniform(size=budget.n_graph).astype(np.float32) for _ in batches]
  print(f'Small CNN Zoo graphs: {pg.n_node} nodes, {pg.n_edge} edges, {pg.n_params} '
        f'parameters; batch {args.batch} padded to {budget.n_node} nodes, {budget.n_edge} '
        'edges')
  peak = matmul_flops_per_second(1024 if args.quick else 2048)
  print(f'float32 matmul reference: {peak / 1e9:.1f} GFLOP/s')

  def configs(h):
    out = {}
    if 'gmn' in args.models:
      out['gmn'] = (f'GMN node/edge {h}, {layers} layers',
                    gmn_jax.GMN(node_dim=h, edge_dim=h, num_layers=layers, readout_hidden=h))
    if 'nggnn' in args.models:
      out['nggnn'] = (f'NG-GNN hidden {h}, {layers} layers, PNA',
                      gmn_jax.NGGNN(hidden_dim=h, num_layers=layers, readout_hidden=h))
    if 'ngt' in args.models:
      if h >= 256:
        out['ngt'] = ('NG-T node 128/edge 64/ffn 256 (CNN-zoo preset)',
                      gmn_jax.NGT.preset('small_cnn_zoo', readout_hidden=128))
      else:
        heads = min(8, h)
        out['ngt'] = (f'NG-T node {h}/edge {h}/ffn {2 * h}, {heads} heads',
                      gmn_jax.NGT(node_dim=h, edge_dim=h, num_layers=layers, num_heads=heads,
                                  readout_hidden=h))
    if 'scalegmn' in args.models:
      out['scalegmn'] = (f'ScaleGMN hidden {h}, {layers} layers, forward',
                         gmn_jax.ScaleGMN(hidden_dim=h, num_layers=layers, readout_hidden=h))
    return out

  rows, graphs_s = [], {}
  for h in sizes:
    for key, (label, model) in configs(h).items():
      steps = args.steps or (2 if args.quick else (12 if h <= 64 else 5))
      r = benchmark(label, model, batches, targets, steps)
      r['graphs_s'] = args.batch / r['step_s']
      r['frac'] = r['flops'] / r['step_s'] / peak
      rows.append(r)
      graphs_s[key, h] = r['graphs_s']
      print(f"  {label}: {r['graphs_s']:.1f} graphs/s, compile {r['compile_s']:.1f}s",
            flush=True)

  print()
  header = (f"{'metanetwork':48s} {'params':>9s} {'compile s':>9s} {'step ms':>9s} "
            f"{'graphs/s':>9s} {'GFLOP/step':>10s} {'GFLOP/s':>8s} {'of matmul':>9s} "
            f"{'cores':>5s}")
  print(header)
  print('-' * len(header))
  for r in rows:
    print(f"{r['name']:48s} {r['n_params']:9d} {r['compile_s']:9.1f} {1e3 * r['step_s']:9.1f} "
          f"{r['graphs_s']:9.1f} {r['flops'] / 1e9:10.2f} {r['flops'] / r['step_s'] / 1e9:8.1f} "
          f"{100 * r['frac']:8.1f}% {r['cores']:5.2f}")
  print(f'(step ms: median over the timed steps; cores: CPU time / wall time of this process; '
        f'load average now {os.getloadavg()[0]:.1f})')
  for h in sizes:
    if ('gmn', h) in graphs_s and ('scalegmn', h) in graphs_s:
      print(f"ScaleGMN / GMN train-step throughput at width {h}: "
            f"{graphs_s['scalegmn', h] / graphs_s['gmn', h]:.2f}x")
  print(f'(matmul reference {peak / 1e9:.1f} GFLOP/s; the published PyTorch NG-GNN on the same '
        'graphs: benchmarks/official_nggnn.py, run in the same sitting)')


if __name__ == '__main__':
  main()

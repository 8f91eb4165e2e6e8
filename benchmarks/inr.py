"""How fast INRs fit and how fast metanetworks train on INR graphs.

    python benchmarks/inr.py           # 256 MNIST SIRENs x 20 steps; NG-GNN-32, NG-T (INR), GMN-32
    python benchmarks/inr.py --quick   # 32 SIRENs x 5 steps, tiny metanetworks
    python benchmarks/inr.py --fitting-only --looped 2   # part 1 alone (~1 minute)

1. Fitting: `gmn_jax.zoos.inr.siren.fit_sirens` on N 28x28 MNIST digits (the zoo's 2 -> 32 -> 32 -> 1
   SIREN), all N in one program (chunks of INRs vmapped, looped over the zoo) against a Python
   loop calling the same program built for one INR; compilation timed apart and excluded; achieved FLOP/s (the SIREN's matmul
   FLOPs, forward and backward, counted by hand: XLA's cost analysis counts a scan's body
   once, not once per step) against a float32 matmul in this process. The fit's steps use a
   polynomial sine (`siren._sincos`); `reference (jnp.sin)` times the same fit through
   `model.apply`, whose `jnp.sin` XLA:CPU runs as a scalar libm call per element.
2. Training: one jitted AdamW step of NG-GNN (hidden 32, 4 layers), NG-T (the paper's INR size:
   node 64, edge 32, 4 layers, 8 heads) and GMN (32) on batches of 32 INR graphs, as
   `benchmarks/train_step.py` times them, beside the published PyTorch neural-graphs code
   measured on this kind of 2-core machine (NG-GNN-32 about 59 graphs/s forward+backward,
   batch 32; NG-T INR size about 4.3 graphs/s).
"""

import argparse
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

import gmn_jax
from gmn_jax.zoos.inr import zoo as inr_zoo
from gmn_jax.zoos.inr import siren

sys.path.insert(0, str(Path(__file__).parent))
from train_step import benchmark, matmul_flops_per_second  # pylint: disable=g-import-not-at-top


def fitting(n: int, steps: int, looped: int, peak: float) -> None:
  config = inr_zoo.InrZooConfig(max_images=n, steps=steps)
  images, _ = inr_zoo.load_images(config)
  model, coords = config.model(), siren.coordinates(28, 28)
  targets = images.reshape(n, -1, 1)
  keys = jax.random.split(jax.random.key(0), n)
  args = (model, coords, targets, keys, steps, config.learning_rate)
  tic = time.perf_counter()
  siren.fit_sirens.lower(*args).compile()
  compile_s = time.perf_counter() - tic
  tic = time.perf_counter()
  jax.block_until_ready(siren.fit_sirens(*args))
  vmapped_s = time.perf_counter() - tic
  sizes = (2,) + tuple(config.hidden) + (1,)
  # Per pixel and step: 2 FLOPs per weight forward, 4 backward (input and weight gradients).
  flops = 6.0 * sum(a * b for a, b in zip(sizes, sizes[1:])) * coords.shape[0] * steps * n
  one = lambda i: (model, coords, targets[i:i + 1], keys[i:i + 1], steps, config.learning_rate)
  jax.block_until_ready(siren.fit_sirens(*one(0)))  # compile the one-INR program
  tic = time.perf_counter()
  for i in range(looped):
    jax.block_until_ready(siren.fit_sirens(*one(i)))
  looped_s = (time.perf_counter() - tic) / looped
  print(f'fitting {n} SIRENs x {steps} full-batch Adam steps (compile {compile_s:.1f} s, '
        'excluded):')
  print(f'  vmapped: {n / vmapped_s:8.1f} INRs/s  ({flops / vmapped_s / 1e9:.2f} GFLOP/s, '
        f'{100 * flops / vmapped_s / peak:.1f}% of the matmul)')
  print(f'  looped:  {1 / looped_s:8.1f} INRs/s  (mean over {looped} INRs, one program each '
        f'call)   vmapped / looped = {looped_s * n / vmapped_s:.1f}x')
  reference = args + (lambda m, p, x: m.apply(p, x),)
  siren.fit_sirens.lower(*reference).compile()
  jax.block_until_ready(siren.fit_sirens(*reference))  # warm, as the vmapped fit above
  tic = time.perf_counter()
  jax.block_until_ready(siren.fit_sirens(*reference))
  reference_s = time.perf_counter() - tic
  print(f'  reference (jnp.sin): {n / reference_s:8.1f} INRs/s  '
        f'({100 * flops / reference_s / peak:.1f}% of the matmul)   polynomial sine / '
        f'jnp.sin = {reference_s / vmapped_s:.2f}x')


def training(batch: int, quick: bool, peak: float) -> None:
  n = 4 * batch
  config = inr_zoo.InrZooConfig(max_images=n, steps=2)
  images, labels = inr_zoo.load_images(config)
  model, coords = config.model(), siren.coordinates(28, 28)
  params, _ = siren.fit_sirens(model, coords, images.reshape(n, -1, 1),
                               jax.random.split(jax.random.key(0), n), 2, 1e-3)
  pg = gmn_jax.trace(model, jax.tree.map(lambda a: a[0], params), coords[:1])
  stacked = jax.vmap(pg.encode)(params)
  graphs = [jax.tree.map(lambda a, i=i: a[i], stacked) for i in range(n)]
  budget = gmn_jax.budget_for(pg, batch)
  batches = [gmn_jax.batch(graphs[i * batch:(i + 1) * batch], budget) for i in range(4)]
  targets = [np.random.default_rng(i).uniform(size=budget.n_graph).astype(np.float32)
             for i in range(4)]
  layers = 1 if quick else 4
  h = 8 if quick else 32
  models = {
      f'NG-GNN hidden {h}, {layers} layers': gmn_jax.NGGNN(hidden_dim=h, num_layers=layers,
                                                           readout_hidden=h),
      'NG-T INR size (node 64, edge 32, 4 layers, 8 heads)' if not quick else 'NG-T tiny':
          gmn_jax.NGT.preset('inr', readout_hidden=64) if not quick else
          gmn_jax.NGT(node_dim=8, edge_dim=8, num_layers=1, num_heads=2, readout_hidden=8),
      f'GMN node/edge {h}, {layers} layers': gmn_jax.GMN(node_dim=h, edge_dim=h,
                                                         num_layers=layers, readout_hidden=h),
  }
  print(f'\ntraining on INR graphs ({pg.n_node} nodes, {pg.n_edge} edges, {pg.n_params} '
        f'parameters), batch {batch}:')
  for label, metanet in models.items():
    r = benchmark(label, metanet, batches, targets, 2 if quick else 8)
    print(f"  {label:52s} {batch / r['step_s']:7.1f} graphs/s  (step {1e3 * r['step_s']:.0f} "
          f"ms, {r['flops'] / r['step_s'] / 1e9:.2f} GFLOP/s = "
          f"{100 * r['flops'] / r['step_s'] / peak:.1f}% of the matmul, compile "
          f"{r['compile_s']:.0f} s)", flush=True)
  print('  published PyTorch neural-graphs code on a 2-core machine: NG-GNN-32 about 59 '
        'graphs/s, NG-T INR size about 4.3 graphs/s (forward+backward, batch 32)')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true')
  parser.add_argument('--inrs', type=int, default=256)
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--looped', type=int, default=16, help='INRs timed in the Python loop')
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--fitting-only', action='store_true', help='skip part 2 (training)')
  args = parser.parse_args()
  if args.quick:
    args.inrs, args.steps, args.looped, args.batch = 32, 5, 4, 4
  print(f'jax {jax.__version__} on {jax.devices()[0].platform}, '
        f'{len(os.sched_getaffinity(0))} CPU cores, load average {os.getloadavg()[0]:.1f}')
  peak = matmul_flops_per_second(1024 if args.quick else 2048)
  print(f'float32 matmul reference: {peak / 1e9:.1f} GFLOP/s\n')
  fitting(args.inrs, args.steps, args.looped, peak)
  if not args.fitting_only:
    training(args.batch, args.quick, peak)


if __name__ == '__main__':
  main()

"""Start-up of a cold `fit`: the metanetwork's initialisation, and how long a checkpoint
holds the run up.

1. Initialisation, in one process: `gmn_jax.training.init_params` (one program, its random
   draws batched), the plain jitted `model.init` (`init_params(..., batch_draws=False)`) and
   Flax's eager `model.init` (one small program compiled per primitive and shape), CPU
   seconds (`time.process_time`, all threads) and wall seconds of each, their ratios, and
   whether the parameters are the same bits; before them, first in the process, everything a
   cold `fit` does before its first step (`fit` with 0 epochs: initial parameters and
   optimizer state, run directory, restore) for a GMN of another readout width.
   The model is the generalization task's tiny GMN (hidden 16, 2 layers; `--model`) on
   graphs of its 8x8 digit CNNs.
2. Checkpoints: the seconds one `RunDirectory.save` of that GMN's train state holds the
   caller, written in the background (`save`, as `fit` now calls it) against waiting for the
   write to finish (`save` then `wait_until_finished`, as every epoch did before), one
   training epoch of simulated work apart.

    python benchmarks/startup.py            # ~1 minute on 2 cores
    python benchmarks/startup.py --model nggnn

Every number comes from a process without a persistent compilation cache (it is switched
off here), as a first run on a machine sees it.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)  # cold: compile everything here

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

import gmn_jax  # pylint: disable=g-import-not-at-top,wrong-import-position
from gmn_jax.training.fit import TrainConfig, fit  # pylint: disable=g-import-not-at-top,wrong-import-position
from gmn_jax.training.init_program import init_params  # pylint: disable=g-import-not-at-top,wrong-import-position
from gmn_jax.training.graph_set import GraphSet  # pylint: disable=g-import-not-at-top,wrong-import-position
from gmn_jax.training.run_directory import RunDirectory  # pylint: disable=g-import-not-at-top,wrong-import-position
from gmn_jax.zoos.cnn.small_cnn import SmallCNN  # pylint: disable=g-import-not-at-top,wrong-import-position


def digit_cnn_graphs(n: int = 32) -> GraphSet:
  """`n` randomly initialised CNNs of the generalization task's tiny zoo shape (width 4 on
  8x8x1 digits), encoded, with random targets."""
  model, x = SmallCNN(width=4, num_classes=10, num_layers=3, strides=2, padding='SAME'), \
      jnp.zeros((1, 8, 8, 1))
  zoo = jax.jit(jax.vmap(lambda k: model.init(k, x)))(jax.random.split(jax.random.key(0), n))
  pg = gmn_jax.trace(model, jax.tree.map(lambda a: a[0], zoo), x)
  return GraphSet([pg], [jax.vmap(pg.encode)(zoo)], np.zeros(n, int), np.arange(n),
                  np.random.default_rng(0).uniform(size=n))


def _timed(fn):
  cpu, wall = time.process_time(), time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.process_time() - cpu, time.perf_counter() - wall


def initialisation(model, data: GraphSet, batch_size: int) -> None:
  graphs, _, _ = next(data.batches(np.arange(1), batch_size, data.budget(batch_size)))
  key = jax.random.key(0)
  jax.jit(lambda a: a + 1)(1.0)  # the process's first compilation pays for XLA's start-up
  # First, while JAX's tracing caches are cold: everything a cold fit does before its first step.
  with tempfile.TemporaryDirectory() as workdir:
    config = TrainConfig(epochs=0, batch_size=batch_size)
    fresh = model.clone(readout_hidden=model.readout_hidden + 1)  # not compiled below
    _, cpu_fit, wall_fit = _timed(lambda: fit(fresh, data, np.arange(len(data)), np.arange(0),
                                              config, workdir, progress=False).params)
  print(f'a cold fit of the {type(model).__name__} before its first step, first in the process '
        f'(0 epochs, readout_hidden {fresh.readout_hidden}): CPU {cpu_fit:.2f} s (wall '
        f'{wall_fit:.2f})')
  batched, cpu_batched, wall_batched = _timed(lambda: init_params(model, key, graphs))
  plain, cpu_plain, wall_plain = _timed(lambda: init_params(model, key, graphs,
                                                            batch_draws=False))
  eager, cpu_eager, wall_eager = _timed(lambda: model.init(key, graphs))
  same = all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(
      jax.tree.leaves(eager), jax.tree.leaves(plain), jax.tree.leaves(batched)))
  n_params = sum(int(np.size(a)) for a in jax.tree.leaves(eager))
  print(f'{type(model).__name__} ({n_params} parameters) initialisation, CPU s (wall s):')
  print(f'  init_params (batched draws) {cpu_batched:6.2f} ({wall_batched:.2f})')
  print(f'  plain jitted init           {cpu_plain:6.2f} ({wall_plain:.2f})')
  print(f'  eager model.init            {cpu_eager:6.2f} ({wall_eager:.2f})')
  print(f'  ratio plain / batched: CPU {cpu_plain / cpu_batched:.2f}x, wall '
        f'{wall_plain / wall_batched:.2f}x; eager / batched: CPU '
        f'{cpu_eager / cpu_batched:.2f}x; all three the same bits: {same}')


def checkpoints(model, data: GraphSet, batch_size: int, saves: int, epoch_s: float) -> None:
  graphs, _, _ = next(data.batches(np.arange(1), batch_size, data.budget(batch_size)))
  params = init_params(model, jax.random.key(0), graphs)
  state = {'params': params, 'mu': params, 'nu': params, 'best_params': params,
           'epoch': np.asarray(0)}
  held = {}
  for mode in ('wait', 'background'):
    with tempfile.TemporaryDirectory() as workdir:
      run, held[mode] = RunDirectory(workdir), []
      for step in range(1, saves + 1):
        time.sleep(epoch_s)  # an epoch of training between two checkpoints
        tic = time.perf_counter()
        run.save(step, {**state, 'epoch': np.asarray(step)}, [])
        if mode == 'wait':
          run.manager.wait_until_finished()
        held[mode].append(time.perf_counter() - tic)
      run.close()
  print(f'checkpoint of the train state ({4 * sum(a.nbytes for a in jax.tree.leaves(params))}'
        f' bytes), seconds the run is held per save, {saves} saves {epoch_s} s apart:')
  for mode, name in (('wait', 'save + wait (before)'), ('background', 'save (now)')):
    print(f'  {name:22s} median {np.median(held[mode]):.3f}, max {max(held[mode]):.3f}')
  print(f'  ratio of medians (before / now): '
        f'{np.median(held["wait"]) / np.median(held["background"]):.1f}x')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--model', choices=('gmn', 'nggnn'), default='gmn')
  parser.add_argument('--saves', type=int, default=5)
  parser.add_argument('--epoch-seconds', type=float, default=1.0)
  args = parser.parse_args()
  data = digit_cnn_graphs()
  budget = data.budget(16)
  sizes = dict(max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  model = (gmn_jax.GMN(node_dim=16, edge_dim=16, num_layers=2, readout_hidden=16, **sizes)
           if args.model == 'gmn' else
           gmn_jax.NGGNN(hidden_dim=16, num_layers=2, readout_hidden=16, **sizes))
  print(f'jax {jax.__version__}, {jax.devices()[0].platform}, load {os.getloadavg()[0]:.2f}')
  initialisation(model, data, 16)
  checkpoints(model, data, 16, args.saves, args.epoch_seconds)


if __name__ == '__main__':
  main()

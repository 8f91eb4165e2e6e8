"""How fast the diverse zoo trains, per family: one vmapped program over the members of an
architecture against a Python loop over them.

    python benchmarks/diverse_zoo.py                 # 32 members per family, 3 epochs
    python benchmarks/diverse_zoo.py --quick         # 8 members, 1 epoch
    python benchmarks/diverse_zoo.py --families cnn vit --members 64

Both sides run the trainer of `gmn_jax.generate_diverse_zoo` on the same members (same
hyperparameters, initialisations, data order and dropout: every random stream is keyed by the
member's id), in this process: vmapped, the members are one program; looped, the program is
built for one member and called once per member. Compilation is timed apart and excluded from
the rates. Also checks that loop and vmap agree on every member's test accuracy.
"""

import argparse
import time

import numpy as np

from gmn_jax.zoos.diverse import zoo as diverse_zoo
from gmn_jax.zoos.datasets import load_dataset
from gmn_jax.zoos.diverse.models import FAMILIES, NetSpec
from gmn_jax.zoos.diverse.members import train_architecture


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--members', type=int, default=32)
  parser.add_argument('--hidden', type=int, default=16)
  parser.add_argument('--epochs', type=int, default=3)
  parser.add_argument('--families', nargs='+', choices=FAMILIES, default=FAMILIES)
  parser.add_argument('--quick', action='store_true', help='8 members, 1 epoch')
  args = parser.parse_args()
  members, epochs = (8, 1) if args.quick else (args.members, args.epochs)
  config = diverse_zoo.DiverseZooConfig(num_members=members, epochs=(epochs, epochs))
  _, hparams = diverse_zoo.sample_members(config)
  codes = diverse_zoo._codes(hparams, np.arange(members))  # pylint: disable=protected-access
  data = load_dataset('digits')
  print(f'{members} members per family, hidden {args.hidden}, depth 2, {epochs} epochs on '
        f'{len(data.x_train)} digits; rates exclude compilation')
  print('| family | vmap nets/s | loop nets/s | vmap / loop | compile vmap, loop (s) |')
  print('|---|---|---|---|---|')
  for family in args.families:
    spec = NetSpec(family, args.hidden, 2, norm='batch' if family == 'cnn' else 'none',
                   heads=2 if family == 'vit' else 1)
    run = lambda ids, size: train_architecture(
        spec, ids, {k: v[ids] for k, v in codes.items()}, data, batch_size=config.batch_size,
        max_epochs=epochs, seed=config.seed, size=size)
    ids = np.arange(members)
    tic = time.perf_counter()
    run(ids, members)  # compiles
    compile_vmap = time.perf_counter() - tic
    tic = time.perf_counter()
    vmapped = run(ids, members)
    t_vmap = time.perf_counter() - tic
    tic = time.perf_counter()
    run(ids[:1], 1)  # compiles
    compile_loop = time.perf_counter() - tic
    tic = time.perf_counter()
    looped = [run(ids[i:i + 1], 1) for i in range(members)]
    t_loop = time.perf_counter() - tic
    acc_loop = np.concatenate([r['metrics']['test_accuracy'] for r in looped])
    gap = np.abs(acc_loop - vmapped['metrics']['test_accuracy']).max()
    print(f'| {family} | {members / t_vmap:.1f} | {members / t_loop:.1f} | '
          f'{t_loop / t_vmap:.2f} | {compile_vmap - t_vmap:.0f}, {compile_loop:.0f} |'
          + (f' (accuracies differ by up to {gap:.3f})' if gap > 0.02 else ''))


if __name__ == '__main__':
  main()

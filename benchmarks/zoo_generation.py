"""How fast a zoo trains: one vmapped program over all members against a Python loop over them.

    python benchmarks/zoo_generation.py                # 100 width-8 digits CNNs, 4 epochs
    python benchmarks/zoo_generation.py --quick        # 16 members, 1 epoch
    python benchmarks/zoo_generation.py --members 200 --width 12 --epochs 8

Both sides run the same jitted trainer of `gmn_jax.generate_zoo` on the same members (same
hyperparameters, initialisations, data order and dropout, since every random stream is keyed by
the member's id), in this process: vmapped, all members are one program; looped, the program
is built for one member and called once per member. Compilation is timed apart and excluded
from the rates. Also times the vmapped program with `lax` convolutions instead of the patch
matmuls the trainer uses, and checks that loop and vmap agree on every member's accuracies.
"""

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

import gmn_jax
from gmn_jax.zoos.cnn import config as zoo_config
from gmn_jax.zoos.cnn import members as members_lib


def _timed(fn):
  start = time.perf_counter()
  out = jax.block_until_ready(fn())
  return out, time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--members', type=int, default=100)
  parser.add_argument('--width', type=int, default=8)
  parser.add_argument('--epochs', type=int, default=4)
  parser.add_argument('--quick', action='store_true', help='16 members, 1 epoch')
  parser.add_argument('--no-lax', action='store_true', help='skip the lax-convolution run')
  args = parser.parse_args()
  if args.quick:
    args.members, args.epochs = 16, 1
  config = dataclasses.replace(
      gmn_jax.ZooConfig(), widths=(args.width,), num_members=args.members,
      shard_size=args.members, snapshot_epochs=(0, args.epochs))
  data = gmn_jax.load_dataset(config.dataset)
  hparams = zoo_config.sample_hyperparameters(config)
  ids = np.arange(args.members)
  steps = len(data.x_train) // config.batch_size * args.epochs
  print(f'{args.members} CNNs of width {args.width} on digits ({len(data.x_train)} train '
        f'images), {args.epochs} epochs = {steps} steps of {config.batch_size}; '
        f'devices: {jax.devices()}')

  def program(members, matmul_conv=True):
    return members_lib._shard_program(config, args.width, members, data.input_shape,
                                  data.num_classes, len(data.x_train), len(data.x_test),
                                  matmul_conv=matmul_conv)[0]

  def run(prog, member_ids):
    codes = members_lib._codes(hparams, member_ids)
    return prog(codes, jnp.asarray(member_ids, jnp.int32), data.x_train, data.y_train,
                data.x_test, data.y_test)

  results = {}
  for name, matmul_conv in [('vmap', True)] + ([] if args.no_lax else [('vmap, lax conv',
                                                                        False)]):
    prog = program(args.members, matmul_conv)
    _, first = _timed(lambda: run(prog, ids))
    out, wall = _timed(lambda: run(prog, ids))
    results[name] = out
    print(f'{name:>15}: compile+run {first:6.1f} s, run {wall:6.2f} s = '
          f'{args.members / wall:7.1f} members/s, '
          f'{args.members * args.epochs / wall:7.1f} member-epochs/s')

  prog = program(1)
  _, first = _timed(lambda: run(prog, ids[:1]))
  looped, wall = _timed(lambda: [run(prog, ids[i:i + 1]) for i in range(args.members)])
  print(f'{"python loop":>15}: compile+run {first:6.1f} s, run {wall:6.2f} s = '
        f'{args.members / wall:7.1f} members/s, '
        f'{args.members * args.epochs / wall:7.1f} member-epochs/s')
  vmap_wall = _timed(lambda: run(program(args.members), ids))[1]
  print(f'vmap is {wall / vmap_wall:.1f}x faster than the loop (rerun of vmap: '
        f'{vmap_wall:.2f} s)')

  vmapped = np.asarray(results['vmap'][1])  # metrics [S, members, 4]
  loop_metrics = np.concatenate([np.asarray(o[1]) for o in looped], axis=1)
  accuracy = [zoo_config.METRICS.index('train_accuracy'), zoo_config.METRICS.index('test_accuracy')]
  gap = np.abs(vmapped[..., accuracy] - loop_metrics[..., accuracy])
  print(f'loop vs vmap: accuracies differ by at most {gap.max():.4f} '
        f'(median {np.median(gap):.4f}; float rounding in batched matmuls can flip a few '
        'predictions)')


if __name__ == '__main__':
  main()

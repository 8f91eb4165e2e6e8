"""Predict a CNN's test accuracy from its weights: zoo -> metanetworks, baselines -> report.

    python -m experiments.generalization                 # digits zoo, every method (~7-10 min)
    python -m experiments.generalization --quick         # a smoke run
    python -m experiments.generalization --split ood     # train narrow CNNs, test wider ones
    python -m experiments.generalization --zoo-variant mnist  # a named zoo unlike the default
                                                              # (workdir/generalization-mnist)
    python -m experiments.generalization --targets rank  # every method regresses the accuracies'
                                                         # training-set ranks (same τ scale)
    python -m experiments.generalization --zoo-dir PATH  # a zoo in the Small CNN Zoo format
    python -m experiments.generalization --zoo-dir PATH --padding SAME --input-shape 8,8,1
    python -m experiments.generalization --zoo-dir cifar10 --protocol published --split-file
        cifar10_split.csv --methods nggnn ngt statnn_gbm --epoch-scale 0.05  # (one line)
    python -m experiments.generalization --data-parallel # zoo members and batches over every
                                                         # device (of every host: docs/scaling.md)

Writes results.json, results.md, predictions.csv (every test row of every method, with its
row of weights.npy and metadata), predictions.png and learning_curves.png to --workdir; a
killed run started again with the same flags resumes where it stopped.
"""

import argparse
import contextlib
import dataclasses

import jax

from experiments import flags
from gmn_jax.mesh import initialize_distributed, make_mesh
from gmn_jax.tasks import generalization as task
from gmn_jax.tasks.generalization import variants
from gmn_jax.training.report import table

ALIASES = {'members': 'zoo.num_members', 'dataset': 'zoo.dataset', 'epochs': 'train.epochs'}


def parser() -> argparse.ArgumentParser:
  """The flags: the config's (`flags.parser`) and this experiment's own."""
  out = flags.parser(__doc__, task.Config, None, ALIASES,
                     {'methods': task.METHODS, 'protocol': task.PROTOCOLS,
                      'split': ('id', 'ood'), 'targets': task.TARGETS},
                     workdir_rule='workdir/generalization, or workdir/generalization-<variant> '
                     'with --zoo-variant')
  zoo_dir = out.add_argument_group(
      '--zoo-dir architecture', 'what the Small CNN Zoo format does not record (else read from '
      'arch.json beside layout.csv, then config.* columns, then defaults; printed at the start)')
  zoo_dir.add_argument('--padding', type=str.upper, choices=('SAME', 'VALID'),
                       help="of every convolution (default: config.padding, else Keras' VALID)")
  zoo_dir.add_argument('--strides', type=int, help='of every convolution (default: '
                       'config.cnn_stride, else 2)')
  zoo_dir.add_argument('--input-shape', type=lambda s: tuple(int(d) for d in s.split(',')),
                       help='H,W,C of the images (default: config.input_shape or from '
                       'config.dataset)')
  zoo_dir.add_argument('--activation-column', help='metrics column naming each run\'s '
                       'activation, relu or tanh (default: config.activation)')
  out.add_argument('--zoo-variant', choices=sorted(variants.ZOO_VARIANTS), help='start from '
                   'this named zoo instead of the default one (the other flags override it; '
                   'workdir: workdir/generalization-NAME): ' + '; '.join(
                       f'{k}: {v}' for k, v in variants.DESCRIPTIONS.items()))
  out.add_argument('--data-parallel', action='store_true', help='split zoo members and '
                   'training batches over all devices (a "data" mesh axis); on several '
                   'hosts set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID')
  return out


def run(argv=None) -> None:
  args = parser().parse_args(argv)
  initialize_distributed()  # several hosts, when the environment says so
  name = args.zoo_variant
  config = flags.config(args, preset=name and (lambda: variants.zoo_variant(name)))
  if args.workdir is None:
    args.workdir = 'workdir/generalization' + (f'-{name}' if name else '')
  arch = {k: v for k in ('padding', 'strides', 'input_shape', 'activation_column')
          if (v := getattr(args, k)) is not None}
  if arch:
    config = dataclasses.replace(config, zoo_arch=arch)
  with jax.set_mesh(make_mesh()) if args.data_parallel else contextlib.nullcontext():
    results = task.train_and_evaluate(config, args.workdir)
  print(table(results))
  print(f'\nreport: {args.workdir}/results.md ({results["total_seconds"]:.0f} s)')


def main(argv=None) -> None:
  flags.main(run, argv)


if __name__ == '__main__':
  main()

"""Predict a CNN's test accuracy from its weights: zoo -> metanetworks, baselines -> report.

    python -m experiments.generalization                 # digits zoo, every method (~7-10 min)
    python -m experiments.generalization --quick         # a smoke run
    python -m experiments.generalization --split ood     # train narrow CNNs, test wider ones
    python -m experiments.generalization --zoo-dir PATH  # a zoo in the Small CNN Zoo format
    python -m experiments.generalization --zoo-dir PATH --padding SAME --input-shape 8,8,1
    python -m experiments.generalization --zoo-dir cifar10 --protocol published --split-file
        cifar10_split.csv --methods nggnn ngt statnn_gbm --epoch-scale 0.05  # (one line)
    python -m experiments.generalization --data-parallel # zoo members and batches over every
                                                         # device (of every host: README Scaling)

Writes results.json, results.md, predictions.csv (every test row of every method, with its
row of weights.npy and metadata), predictions.png and learning_curves.png to --workdir; a
killed run started again with the same flags resumes where it stopped.
"""

import contextlib

import jax

from experiments import flags
from gmn_jax.mesh import initialize_distributed, make_mesh
from gmn_jax.tasks.generalization import (METHODS, PROTOCOLS, GeneralizationConfig,
                                          train_and_evaluate)
from gmn_jax.training.report import table


def main(argv=None) -> None:
  parser = flags.parser(__doc__, METHODS, 'workdir/generalization')
  parser.add_argument('--quick', action='store_true', help='small zoo, few epochs (smoke run)')
  parser.add_argument('--zoo-dir', help='read a Small CNN Zoo directory instead of generating')
  zoo_dir = parser.add_argument_group(
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
  parser.add_argument('--protocol', choices=PROTOCOLS, help="'published': final checkpoints, "
                      "NFN's split, NG-GNN/NG-T with the papers' settings (default: "
                      'all_snapshots)')
  parser.add_argument('--split-file', help="for --protocol published: NFN's index CSV, or a "
                      'JSON {"train": [rows], "val": [...], "test": [...]}')
  parser.add_argument('--final-step', type=int, help='for --protocol published: keep the '
                      "rows at this step, as NFN's loader (86 for the published zoos; "
                      "default: each run's last checkpoint)")
  parser.add_argument('--epoch-scale', type=float, help='for --protocol published: multiplies '
                      "NG-GNN's and NG-T's 300 epochs (e.g. 0.05 on a CPU)")
  parser.add_argument('--dataset', help='zoo training data: digits (default, offline), or a '
                      'prepared TFDS set: mnist, fashion_mnist, cifar10, svhn_cropped')
  parser.add_argument('--members', type=int, help='zoo size (CNNs; each is saved at every snapshot epoch)')
  parser.add_argument('--split', choices=('id', 'ood'), help="'ood': test on the widest CNNs")
  parser.add_argument('--epochs', type=int, help='training epochs of every method')
  parser.add_argument('--hidden', type=int, help='width of the graph metanetworks')
  parser.add_argument('--probes', type=int, help='random-noise probe inputs whose per-neuron '
                      'values the graph metanetworks read (default 16; 0: weights only)')
  parser.add_argument('--seed', type=int, help='seed of the splits and of training')
  parser.add_argument('--data-parallel', action='store_true', help='split zoo members and '
                      'training batches over all devices (a "data" mesh axis); on several '
                      'hosts set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID')
  args = parser.parse_args(argv)
  initialize_distributed()  # several hosts, when the environment says so
  config = (GeneralizationConfig.tiny() if args.tiny else GeneralizationConfig.quick()
            if args.quick else GeneralizationConfig.default())
  zoo = flags.replace(config.zoo, dataset=args.dataset, num_members=args.members)
  train = flags.replace(config.train, epochs=args.epochs, seed=args.seed)
  arch = flags.given(args, 'padding', 'strides', 'input_shape', 'activation_column')
  config = flags.replace(config, zoo=zoo, train=train, zoo_arch=arch or None, **flags.given(
      args, 'methods', 'zoo_dir', 'split', 'hidden', 'probes', 'seed', 'protocol', 'split_file',
      'final_step', 'epoch_scale'))
  with jax.set_mesh(make_mesh()) if args.data_parallel else contextlib.nullcontext():
    results = train_and_evaluate(config, args.workdir)
  print(table(results))
  print(f'\nreport: {args.workdir}/results.md ({results["total_seconds"]:.0f} s)')


if __name__ == '__main__':
  main()

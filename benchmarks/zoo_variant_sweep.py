"""What does GMN need on a zoo nobody tuned for? One setting changed at a time, chosen on
validation τ (#27 item 5).

    python benchmarks/zoo_variant_sweep.py --zoo-variant final-step \\
        --workdir /work/cache/zoos/final-step min_steps=1000 hidden=16 probes=32

Reads (or generates) the variant's zoo in `--workdir/zoo` (the one `python -m
experiments.generalization --zoo-variant NAME --workdir DIR` writes; `--zoo-variant default`:
the main job's zoo and settings, as `--workdir DIR` without a variant), encodes it once per
probe count, splits it as the task does, and trains the task's `--method` (GMN by default)
once per setting, `--seeds` times each. Every setting is `field=value` over the variant's
`GeneralizationConfig` (`hidden`, `layers`, `probes`, `min_steps`) or its `TrainConfig`
(`train.epochs`, `train.weight_decay`, `train.max_scale`, `train.learning_rate`, ...);
several fields join with commas (`min_steps=1000,hidden=16`); `default` is the variant as it
is. Per setting and seed it prints the best validation τ and its epoch, then for the seeds'
averaged predictions (an ensemble, each seed at its own best validation epoch) validation
and test τ. Choose by validation; test is printed to be reported, not to choose with.
`--method statnn_gbm` fits the trees instead (seconds; its rounds chosen on validation).
Runs go to `--workdir/sweep/<method>/<setting>/seed<k>` and resume (a killed sweep started again
skips finished epochs).
"""

import argparse
import dataclasses
import pathlib

import numpy as np

from gmn_jax.tasks.generalization import baselines, variants
from gmn_jax.tasks.generalization import run as run_lib
from gmn_jax.tasks.generalization.config import GeneralizationConfig
from gmn_jax.tasks.generalization.data import (Data, encode_zoo, split_by_model, task_zoo,
                                               trained_targets)
from gmn_jax.tasks.generalization.methods import REGISTRY
from gmn_jax.training import metrics
from gmn_jax.training.fit import fit, predict


def _value(text: str):
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return {'true': True, 'false': False}.get(text.lower(), text)


def setting(base: GeneralizationConfig, spec: str) -> GeneralizationConfig:
  """`base` with the `field=value[,field=value]` changes of `spec` ('default': none)."""
  top, train = {}, {}
  for item in filter(None, spec.split(',')):
    if item == 'default':
      continue
    key, value = item.split('=')
    (train if key.startswith('train.') else top)[key.removeprefix('train.')] = _value(value)
  return dataclasses.replace(base, train=dataclasses.replace(base.train, **train), **top)


def _gbm(config: GeneralizationConfig, data: Data, back) -> tuple[float, float, str]:
  """StatNN-GBM's (validation τ, test τ, note): its rounds are chosen on validation either
  way, so "testing" it on the validation rows gives its validation τ."""
  tau = lambda rows, preds: metrics.kendall_tau(data.graphs.targets[rows], back(preds))
  val_tau = tau(data.val, baselines.fit_statnn_gbm(config, dataclasses.replace(
      data, test=data.val))[0])
  preds, rounds = baselines.fit_statnn_gbm(config, data)
  return val_tau, tau(data.test, preds), f'{rounds} rounds'


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('settings', nargs='+', help="field=value[,field=value] or 'default'")
  parser.add_argument('--zoo-variant', required=True,
                      choices=['default', *sorted(variants.ZOO_VARIANTS)],
                      help="a named variant, or 'default': the main job's zoo and settings")
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--method', default='gmn', choices=sorted(REGISTRY))
  parser.add_argument('--seeds', type=int, default=1)
  args = parser.parse_args()
  workdir = pathlib.Path(args.workdir)
  base = (GeneralizationConfig.default() if args.zoo_variant == 'default'
          else variants.zoo_variant(args.zoo_variant))
  zoo = task_zoo(base, workdir)
  encoded = {}
  for spec in args.settings:
    config = setting(base, spec)
    if config.probes not in encoded:
      encoded[config.probes] = encode_zoo(zoo, config.probes, config.max_abs_param)
    graphs, table, archs, dropped = encoded[config.probes]
    train, val, test = split_by_model(config, table)
    data, back = trained_targets(config, Data(graphs, table, archs, train, val, test,
                                              dropped))
    if args.method == 'statnn_gbm':
      val_tau, test_tau, note = _gbm(config, data, back)
      print(f'RESULT statnn_gbm {spec}: {note}: val τ {val_tau:.3f}, test τ {test_tau:.3f}',
            flush=True)
      continue
    model = run_lib.build_model(args.method, config, data, None)
    val_preds, test_preds = [], []
    for seed in range(args.seeds):
      train_config = dataclasses.replace(
          run_lib.train_config_for(args.method, config, len(train)),
          seed=seed)
      fitted = fit(model, data.graphs, train, val, train_config,
                   workdir / 'sweep' / args.method / spec, f'seed{seed}', progress=False)
      best = fitted.history[fitted.best_epoch - 1]
      print(f'{spec} seed {seed}: best val τ {best["val_kendall_tau"]:.3f} at epoch '
            f'{fitted.best_epoch}/{train_config.epochs}', flush=True)
      val_preds.append(back(predict(model, fitted.params, data.graphs, val)))
      test_preds.append(back(predict(model, fitted.params, data.graphs, test)))
    val_tau = metrics.kendall_tau(graphs.targets[val], np.mean(val_preds, 0))
    test_tau = metrics.kendall_tau(graphs.targets[test], np.mean(test_preds, 0))
    print(f'RESULT {args.method} {spec}: {args.seeds} seed(s) averaged: val τ {val_tau:.3f}, '
          f'test τ {test_tau:.3f} ({len(train)}/{len(val)}/{len(test)} rows)', flush=True)


if __name__ == '__main__':
  main()

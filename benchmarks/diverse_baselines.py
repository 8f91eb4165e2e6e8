"""Why the diverse run's sequence baselines stayed near a constant: DMC and parameter-DeepSets
variants (normalisation inside DMC's blocks, raw values or the metanetworks' value features)
trained on the default diverse zoo's all-data split (seed 0), with training and held-out scores.

    python benchmarks/diverse_baselines.py --workdir workdir/da          # the variants, 8 epochs
    python benchmarks/diverse_baselines.py --workdir workdir/da --epochs 20 --variants dmc

The zoo is generated in (or read from) `--workdir/zoo`, as `python -m
experiments.diverse_architectures --workdir ...` does. Each variant trains with permutation
augmentation, batch 32, the given epochs and learning rate, and keeps its best validation
epoch; one line of JSON per variant: the training loss per epoch, R², Kendall τ and the
spread (sd) of the predictions on the training, validation and test networks.
"""

import argparse
import json
import pathlib
import time

import jax
import numpy as np

from gmn_jax.metanets.sequence_baselines import DMC, ParameterDeepSets
from gmn_jax.tasks.diverse_architectures import DiverseArchitecturesConfig, load_and_encode, split
from gmn_jax.tasks.diverse_architectures.run import longest_network
from gmn_jax.training import metrics
from gmn_jax.training.fit import TrainConfig, fit, predict

H = 32  # the default run's hidden: DMC channels (8, 16, 64, 64), DeepSets width 64


def variants(length: int) -> dict:
  """Name: module. `dmc` is the current default, `dmc-layernorm-raw` the former one."""
  dmc = lambda **kw: DMC(max_length=length, channels=(8, 16, 2 * H, 2 * H), hidden=(2 * H,),
                         **kw)
  return {'dmc': dmc(), 'dmc-raw': dmc(value_features='linear'),
          'dmc-layernorm-raw': dmc(norm='layer', value_features='linear'),
          'deepsets': ParameterDeepSets(max_length=length, hidden=2 * H),
          'deepsets-raw': ParameterDeepSets(max_length=length, hidden=2 * H,
                                            value_features='linear')}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--workdir', default='workdir/diverse_architectures/diverse')
  parser.add_argument('--variants', nargs='+', default=None)
  parser.add_argument('--epochs', type=int, default=8)
  parser.add_argument('--learning-rate', type=float, default=3e-3)
  args = parser.parse_args()
  workdir = pathlib.Path(args.workdir)
  config = DiverseArchitecturesConfig.default()
  data = load_and_encode(config, workdir, progress=False)
  graphs, y = data.graphs, data.graphs.targets
  train, val, test = split(config, data.table)
  models = variants(longest_network(graphs))
  print(json.dumps({'train': len(train), 'val': len(val), 'test': len(test),
                    'train_target_sd': float(np.std(y[train]))}))
  for name in args.variants or models:
    tc = TrainConfig(epochs=args.epochs, learning_rate=args.learning_rate, max_scale=1.0)
    tic = time.time()
    fitted = fit(models[name], graphs, train, val, tc,
                 workdir / 'baseline_variants' / f'e{args.epochs}-lr{args.learning_rate:g}',
                 name, progress=False)
    out = {'variant': name, 'epochs': args.epochs, 'learning_rate': args.learning_rate,
           'best_epoch': fitted.best_epoch,
           'train_loss': [round(h['train_loss'], 4) for h in fitted.history]}
    for split_name, rows in (('train', train), ('val', val), ('test', test)):
      p = predict(models[name], fitted.params, graphs, rows)
      r = metrics.regression(y[rows], p)
      out[split_name] = {'r2': round(r['r2'], 3), 'kendall_tau': round(r['kendall_tau'], 3),
                         'prediction_sd': round(float(np.std(p)), 3)}
    out['seconds'] = round(time.time() - tic, 1)
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
  jax.config.update('jax_compilation_cache_dir',
                    str(pathlib.Path('workdir/jax_cache').absolute()))
  main()

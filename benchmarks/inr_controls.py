"""Controls of INR classification: what a linear classifier reads from an INR zoo.

    python benchmarks/inr_controls.py workdir/inr_classification   # a finished run's workdir

Uses the run's zoo (`<workdir>/zoo`) and its split (`split_by_image` of the default config's
seed and fractions) and fits a logistic regression (scikit-learn, standardised inputs, C = 0.1)
on the training INRs' inputs of each kind, printing training and test accuracy:

- positive controls: the target pixels of each INR's image, and the image each INR renders
  (`zoo.render`); they show that labels, INRs and images are aligned through the pipeline;
- the flat weights (every parameter of the SIREN), each layer's parameters alone, and each
  INR's change from its own initialisation (re-created from the zoo's seed and the INR's
  index, as `inr_zoo` draws it).

Every INR starts from its own random initialisation, so the image lives in the weights only
through a nonlinear function of that INR's random sine features: the weight controls score
near chance on the test INRs while fitting the training INRs, and the pixel controls score
far above it.
"""

import argparse
import pathlib

import jax
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from gmn_jax.tasks.inr_classification import InrClassificationConfig, split_by_image
from gmn_jax.zoos.inr import zoo as inr_zoo


def _flat(params, n: int) -> np.ndarray:
  return np.concatenate([np.asarray(a).reshape(n, -1) for a in jax.tree.leaves(params)], 1)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdir', type=pathlib.Path, help='a finished INR classification run')
  args = parser.parse_args()
  zoo = inr_zoo.load_inr_zoo(args.workdir / 'zoo')
  train, _, test = split_by_image(InrClassificationConfig(), zoo)
  labels, n = zoo.records['label'], len(zoo)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(zoo.config.seed), i))(
      zoo.records['inr'])
  coords = zoo.coordinates()
  init = jax.vmap(lambda k: zoo.model().init(k, coords[:1]))(keys)
  inputs = {'target pixels': zoo.images[zoo.records['image']].reshape(n, -1),
            'rendered pixels': zoo.render(np.arange(n)).reshape(n, -1),
            'flat weights': _flat(zoo.params, n),
            'change from initialisation': _flat(zoo.params, n) - _flat(init, n)}
  for path, leaf in jax.tree_util.tree_leaves_with_path(zoo.params):
    inputs[f'only {jax.tree_util.keystr(path)}'] = np.asarray(leaf).reshape(n, -1)
  chance = np.max(np.bincount(labels[test])) / len(test)
  print(f'{len(train)} training / {len(test)} test INRs; majority class {chance:.1%}')
  for name, x in inputs.items():
    scaler = StandardScaler().fit(x[train])
    model = LogisticRegression(max_iter=300, C=0.1).fit(scaler.transform(x[train]), labels[train])
    print(f'{name:40s} train {model.score(scaler.transform(x[train]), labels[train]):6.1%}  '
          f'test {model.score(scaler.transform(x[test]), labels[test]):6.1%}', flush=True)


if __name__ == '__main__':
  main()

"""Do SIRENs fitted to one image from different random initialisations look alike? A data
diagnostic of INR classification on weights alone.

    python benchmarks/inr_seeds.py                 # 30 images x 6 seeds, the default recipe
    python benchmarks/inr_seeds.py --steps 500     # a longer fit
    python benchmarks/inr_seeds.py --first-layer dwsnets   # DWSNets' first-layer init

Fits `--seeds` INRs per image (the default INR classification zoo's recipe: DWSNets' SIREN,
40 full-batch Adam steps at 5e-3, unless overridden) and prints, per layer, how far fitting
moved the weights from their initialisation (`|W - W0| / |W0|`, Frobenius), and nearest-
neighbour retrieval among all INRs: how often an INR's nearest other INR is one of the same
image, or of the same class, by

- each weight matrix's singular values (invariant to hidden-neuron permutations and sine
  sign flips, the symmetries a weights-only metanetwork must respect),
- the same for the initialisations alone (what the weights would say if fitting had not
  moved them),
- the rendered images (a positive control).

Chance is (seeds - 1) / (n - 1) for the image and about 10% for the class.
"""

import argparse
import dataclasses

import jax
import numpy as np

from gmn_jax.tasks.inr_classification import InrClassificationConfig
from gmn_jax.zoos.inr import siren as siren_lib
from gmn_jax.zoos.inr import zoo as inr_zoo


def _nearest_same(features: np.ndarray, groups: np.ndarray) -> float:
  """Share of rows whose nearest other row (Euclidean, standardised features) shares its
  group."""
  f = (features - features.mean(0)) / (features.std(0) + 1e-12)
  d = ((f[:, None] - f[None]) ** 2).sum(-1)
  np.fill_diagonal(d, np.inf)
  return float((groups[d.argmin(1)] == groups).mean())


def _spectra(params) -> np.ndarray:
  layers = params['params']
  return np.concatenate([np.linalg.svd(np.asarray(layers[f'Dense_{i}']['kernel']),
                                       compute_uv=False) for i in range(len(layers))], -1)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--images', type=int, default=30)
  parser.add_argument('--seeds', type=int, default=6)
  parser.add_argument('--steps', type=int, default=None)
  parser.add_argument('--learning-rate', type=float, default=None)
  parser.add_argument('--first-layer', choices=('sitzmann', 'dwsnets'), default='sitzmann',
                      help="the first layer's initialisation (see inr_first_layer_init.py)")
  args = parser.parse_args()
  if args.first_layer == 'dwsnets':
    from inr_first_layer_init import DwsnetsInitSiren  # pylint: disable=g-import-not-at-top
    siren_lib.Siren = DwsnetsInitSiren
  config = InrClassificationConfig().zoo
  config = dataclasses.replace(config, max_images=args.images,
                               steps=args.steps or config.steps,
                               learning_rate=args.learning_rate or config.learning_rate)
  images, labels = inr_zoo.load_images(config)
  n = len(images) * args.seeds
  image = np.arange(n) % len(images)
  height, width, channels = images.shape[1:]
  coords = siren_lib.coordinates(height, width, config.conv.indexing)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(7), i))(np.arange(n))
  model = config.model(channels)
  init = jax.device_get(jax.vmap(lambda k: model.init(k, coords[:1]))(keys))
  params, mse = siren_lib.fit_sirens(model, coords, images[image].reshape(n, -1, channels),
                                     keys, config.steps, config.learning_rate)
  params = jax.device_get(params)
  print(f'{n} INRs ({len(images)} images x {args.seeds} seeds), {config.steps} steps at '
        f'{config.learning_rate:g}: PSNR mean '
        f'{float(np.mean(siren_lib.psnr(np.asarray(mse), 1.0))):.1f} dB')
  for name in params['params']:
    w, w0 = params['params'][name]['kernel'], init['params'][name]['kernel']
    moved = np.linalg.norm((w - w0).reshape(n, -1), axis=1) / np.linalg.norm(
        w0.reshape(n, -1), axis=1)
    print(f'{name}: |W - W0| / |W0| median {np.median(moved):.3f}')
  rendered = np.asarray(jax.vmap(lambda p: siren_lib.render(
      model, p, height, width, config.conv.indexing))(params)).reshape(n, -1)
  chance = (args.seeds - 1) / (n - 1)
  print(f'nearest other INR: same image (chance {100 * chance:.1f}%) / same class')
  for what, features in (('fitted weights, singular values', _spectra(params)),
                         ('initial weights, singular values', _spectra(init)),
                         ('rendered images', rendered)):
    print(f'  {what}: {100 * _nearest_same(features, image):.1f}% / '
          f'{100 * _nearest_same(features, labels[image]):.1f}%')


if __name__ == '__main__':
  main()

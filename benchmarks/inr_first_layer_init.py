"""INR classification on a zoo fitted from DWSNets' initialisation of the first SIREN layer: a
diagnostic of the weights-only question.

    python benchmarks/inr_first_layer_init.py --images 1000 --methods nggnn mlp \
        --epochs 16 --workdir /tmp/inr-dwsinit       # any flag of experiments.inr_classification

DWSNets' and neural-graphs' `INR` build every sine layer with `Siren(dim_in, dim_out)` and
never pass `is_first=True`, so their first layer starts like the hidden ones,
U(+-sqrt(6 / fan_in) / omega0) = U(+-0.058) for 2 inputs, where `gmn_jax`'s `Siren` (as
Sitzmann et al.) starts it at U(+-1 / fan_in) = U(+-0.5). Published MNIST INRs show it: their
first-layer weights have standard deviation 0.063 (neural-graphs' `configs/data/mnist.yaml`
`stats`), ours 0.28. This script runs `experiments.inr_classification` unchanged except that
the zoo is fitted from that initialisation (a `Siren` whose first-layer bound is the hidden
layers'; same forward function, same fitting recipe). Use a work directory of its own: its
`zoo/config.json` cannot tell the two initialisations apart.
"""

import sys

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from experiments import inr_classification
from gmn_jax.zoos.inr import siren as siren_lib


def _uniform(bound: float):
  return lambda key, shape, dtype=jnp.float32: __import__('jax').random.uniform(
      key, shape, dtype, -bound, bound)


class DwsnetsInitSiren(siren_lib.Siren):
  """`Siren` with every layer's kernel from U(+-sqrt(6 / fan_in) / omega0) (DWSNets' INR)."""

  @nn.compact
  def __call__(self, coords):
    x = coords
    for i, width in enumerate(tuple(self.hidden) + (self.out_features,)):
      fan_in = x.shape[-1]
      bias_init = (nn.initializers.zeros if self.zero_bias
                   else _uniform(1.0 / np.sqrt(fan_in)))
      x = nn.Dense(width, kernel_init=_uniform(np.sqrt(6.0 / fan_in) / self.omega0),
                   bias_init=bias_init)(x)
      if i < len(self.hidden):
        x = jnp.sin(self.omega0 * x)
    return x + self.output_offset


def main(argv=None) -> None:
  siren_lib.Siren = DwsnetsInitSiren  # what `InrZooConfig.model` builds
  inr_classification.main(argv if argv is not None else sys.argv[1:])


if __name__ == '__main__':
  main()

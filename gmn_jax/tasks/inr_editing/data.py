"""The INR-editing task's data: the encoded zoo, its edited targets and its split by image,
with a jitted edit-and-render."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gmn_jax.graphs import finite
from gmn_jax.graphs.tracing import trace
from gmn_jax.metanets.batching import Budget, batch
from gmn_jax.tasks.inr_editing.config import EditingConfig
from gmn_jax.tasks.inr_editing.image_edits import apply_edit
from gmn_jax.zoos.inr import zoo as inr_zoo_lib
from gmn_jax.zoos.inr import siren as siren_lib


def split_by_image(config: EditingConfig, zoo: inr_zoo_lib.InrZoo) -> dict[str, np.ndarray]:
  """'train', 'val', 'test' -> INR rows (indices into `zoo.records`), split by image: the
  zoo's images are permuted with `config.seed`, the first `test_fraction` are test, the next
  `val_fraction` validation, the rest training; every INR of an image goes with it. Host-side.
  """
  image = zoo.records['image']
  order = np.random.default_rng(config.seed).permutation(len(zoo.images))
  n_test = int(round(config.test_fraction * len(order)))
  n_val = int(round(config.val_fraction * len(order)))
  groups = {'test': order[:n_test], 'val': order[n_test:n_test + n_val],
            'train': order[n_test + n_val:]}
  return {k: np.flatnonzero(np.isin(image, v)) for k, v in groups.items()}


class EditingData:
  """The encoded zoo, the targets and the split, with a jitted per-batch edit-and-render.

  Host-side container; `edited_images` is jittable.

  Attributes:
    pg: the SIREN's ParameterGraph.
    weight, param: `[n_inr, E, K]`, `[n_inr, N, P]` encoded INRs.
    targets: `[n_inr, H, W, C]` the edited image of each INR's image.
    originals: `[n_inr, H, W, C]` each INR's image.
    split: 'train', 'val', 'test' -> INR rows.
  """

  def __init__(self, zoo: inr_zoo_lib.InrZoo, config: EditingConfig):
    self.zoo, self.config = zoo, config
    model, coords = zoo.model(), zoo.coordinates()
    finite.check_rows(zoo.params, 'INR zoo')  # under jit, encode cannot refuse NaN itself
    first = jax.tree.map(lambda a: a[0], zoo.params)
    self.pg = trace(model, first, coords[:1])
    one = self.pg.encode(first)  # eagerly first: the template caches its static arrays
    stacked = jax.jit(jax.vmap(self.pg.encode))(zoo.params)
    self.weight = np.asarray(stacked.edges['weight'])
    self.param = np.asarray(stacked.nodes['param'])
    conv = zoo.config.conv
    edited = apply_edit(config.edit, zoo.images, conv.low, conv.high)
    image = zoo.records['image']
    self.targets, self.originals = edited[image], zoo.images[image]
    self.split = split_by_image(config, zoo)
    b, pg = config.batch_size, self.pg
    self.batched = batch([one] * b, Budget(
        b * pg.n_node + 1, b * pg.n_edge, b + 1, pg.kernel_size, pg.node_param_size))

  def graphs(self, weight: jax.Array, param: jax.Array):
    """The batched, padded GraphsTuple of `batch_size` INRs' features. Jittable."""
    b = weight.shape[0]
    w = weight.reshape(b * self.pg.n_edge, -1)
    p = jnp.concatenate([param.reshape(b * self.pg.n_node, -1),
                         jnp.zeros((1, param.shape[-1]), param.dtype)])
    g = self.batched
    return g._replace(edges={**g.edges, 'weight': w}, nodes={**g.nodes, 'param': p})

  def render(self, weight: jax.Array, param: jax.Array) -> jax.Array:
    """`[b, H, W, C]` the images of `b` INRs given as graph features. Jittable."""
    pg, zoo = self.pg, self.zoo
    height, width = zoo.images.shape[1:3]

    def one(w, p):
      params = pg.decode(pg.graph_from_features(w, p))
      return siren_lib.render(zoo.model(), params, height, width, zoo.config.conv.indexing)
    return jax.vmap(one)(weight, param)

  def edited_images(self, model: nn.Module | None, params: Any, weight: jax.Array,
                    param: jax.Array) -> jax.Array:
    """The images of the edited INRs (`model` None: the identity edit). Jittable."""
    if model is not None:
      out = model.apply(params, self.graphs(weight, param))
      b, pg = weight.shape[0], self.pg
      weight = out.edges['weight'][:b * pg.n_edge].reshape(weight.shape)
      param = out.nodes['param'][:b * pg.n_node].reshape(param.shape)
    return self.render(weight, param)

  def batches(self, rows: np.ndarray):
    """(rows `[batch_size]`, mask `[batch_size]`) chunks; the last is padded with row 0."""
    b = self.config.batch_size
    for start in range(0, len(rows), b):
      chunk = rows[start:start + b]
      mask = np.arange(b) < len(chunk)
      yield np.concatenate([chunk, np.zeros(b - len(chunk), chunk.dtype)]), mask

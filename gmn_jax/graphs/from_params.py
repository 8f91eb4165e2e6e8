"""The pytree-only door: a parameter graph from a plain Dense/Conv chain, without model code.

A checkpoint of a plain chain of Dense and Conv layers says everything about the graph except
what the weights do not record: the activation, the convolution padding and stride, and how the
last convolution meets the first Dense layer. `from_params` takes those as arguments (defaults:
ReLU, 'SAME' padding, stride 1, global average pooling when the Dense layer's input width equals
the channel count and flattening otherwise), rebuilds the chain as a Flax module and traces it,
so it gives exactly the graph that `trace` gives for the same chain.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gmn_jax.graphs.tracing import trace_function

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    'relu': nn.relu, 'tanh': jnp.tanh, 'sigmoid': nn.sigmoid, 'gelu': nn.gelu,
    'silu': nn.silu, 'sin': jnp.sin, 'identity': lambda x: x,
}


class _Chain(nn.Module):
  """Dense/Conv layers in order, an activation between them."""

  layers: tuple[tuple[str, int, tuple[int, ...], bool], ...]  # name, features, kernel, bias
  activation: str
  to_dense: str  # 'mean' or 'flatten': how the last conv output meets the first Dense
  strides: int
  padding: str

  @nn.compact
  def __call__(self, x):
    act = _ACTIVATIONS[self.activation]
    for i, (name, features, kernel, use_bias) in enumerate(self.layers):
      if not kernel and x.ndim > 2:
        x = (jnp.mean(x, axis=tuple(range(1, x.ndim - 1))) if self.to_dense == 'mean'
             else x.reshape((x.shape[0], -1)))
      if kernel:
        x = nn.Conv(features, kernel, self.strides, self.padding, use_bias=use_bias,
                    name=name)(x)
      else:
        x = nn.Dense(features, use_bias=use_bias, name=name)(x)
      if i < len(self.layers) - 1:
        x = act(x)
    return x


def _natural_key(name: str):
  return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', name)]


def _chain_order(params: Mapping[str, Any], order: Sequence[str] | None) -> list[str]:
  names = list(order) if order is not None else list(params)
  for name in names:
    layer = params.get(name)
    if not isinstance(layer, Mapping) or 'kernel' not in layer:
      raise ValueError(f'from_params: {name!r} is not a Dense/Conv layer (a dict with a '
                       "'kernel' and optionally a 'bias'); use trace() with the model code for "
                       'anything but a plain chain.')
  if order is None and not _chains(params, names):
    names = sorted(names, key=lambda n: (np.ndim(params[n]['kernel']) == 2, _natural_key(n)))
  return names


def _chains(params, names) -> bool:
  for a, b in zip(names, names[1:]):
    out_a, in_b = np.shape(params[a]['kernel'])[-1], np.shape(params[b]['kernel'])[-2]
    if np.ndim(params[b]['kernel']) == 2 and np.ndim(params[a]['kernel']) > 2:
      if in_b % out_a:
        return False
    elif out_a != in_b:
      return False
  return True


def from_params(params: Mapping[str, Any], *, activation: str = 'relu', padding: str = 'SAME',
                strides: int = 1, spatial_shape: Sequence[int] | None = None,
                order: Sequence[str] | None = None):
  """The ParameterGraph of a plain Dense/Conv chain given only its parameters. Host-side.

  Args:
    params: `{layer_name: {'kernel': ..., 'bias': ...}}` (optionally wrapped in
      `{'params': ...}`), Dense kernels `[in, out]`, Conv kernels `[*window, in, out]`.
    activation: applied between layers: one of relu, tanh, sigmoid, gelu, silu, sin, identity.
    padding, strides: of every convolution.
    spatial_shape: the input's spatial size for a CNN; by default inferred (square) when the
      first Dense layer flattens, else 8 per axis.
    order: layer names in order; by default the mapping's order, or natural name order
      (convolutions first) when that order does not chain.

  Returns:
    A ParameterGraph whose `encode` takes `params` in the same layout as given.

  Raises:
    ValueError: the layers do not form a chain, or a layer is not Dense/Conv.
  """
  if activation not in _ACTIVATIONS:
    raise ValueError(f'unknown activation {activation!r}; choose from {sorted(_ACTIVATIONS)}')
  wrapped = set(params) == {'params'}
  layers_tree = params['params'] if wrapped else params
  names = _chain_order(layers_tree, order)
  if not _chains(layers_tree, names):
    shapes = {n: tuple(np.shape(layers_tree[n]['kernel'])) for n in names}
    raise ValueError(f'from_params: the kernels do not chain in the order {names}: {shapes}. '
                     'Pass order=[...] with the layer names in order.')
  layers = []
  for name in names:
    kernel = np.shape(layers_tree[name]['kernel'])
    layers.append((name, int(kernel[-1]), tuple(int(k) for k in kernel[:-2]),
                   'bias' in layers_tree[name]))
  first = np.shape(layers_tree[names[0]]['kernel'])
  convs = [l for l in layers if l[2]]
  to_dense = 'mean'
  if convs:
    n_spatial = len(convs[0][2])
    dense = [l for l in layers if not l[2]]
    if dense:
      in_dense = np.shape(layers_tree[dense[0][0]]['kernel'])[0]
      to_dense = 'mean' if in_dense == convs[-1][1] else 'flatten'
    if spatial_shape is None:
      side = 8
      if to_dense == 'flatten':
        side = round((in_dense // convs[-1][1]) ** (1 / n_spatial)) * strides ** len(convs)
      spatial_shape = (side,) * n_spatial
    example = jnp.zeros((1, *spatial_shape, first[-2]))
  else:
    example = jnp.zeros((1, first[0]))
  chain = _Chain(tuple(layers), activation, to_dense, strides, padding)
  if wrapped:
    apply = lambda v, x: chain.apply(v, x)
  else:
    apply = lambda v, x: chain.apply({'params': v}, x)
  try:
    return trace_function(apply, params, example)
  except TypeError as e:  # shapes that do not fit the rebuilt chain
    raise ValueError(f'from_params: the parameters do not fit a {activation} chain of '
                     f'{[l[0] for l in layers]} on input {example.shape}: {e}') from e

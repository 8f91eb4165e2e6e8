"""Neural graphs' INR augmentation: perturbations of one SIREN's parameter graph that are no
symmetry (the input translated through a random number of layers, the input plane rotated,
every layer shifted by a tenth of its spread, dropout, the first layer rescaled).

Kofinas et al. (2024) train their INR classifiers with these (and without neuron permutations),
as DWSNets trains its MLP baseline. `perturb_inr` applies them to an encoded graph, so every
method reads them (the flat MLP and DeepSets read the same graph fields); pass it as
`GraphSet.batches(..., perturb=perturb_inr, permute=False)`. Host-side (numpy).
"""

from __future__ import annotations

import dataclasses

import jraph
import numpy as np


@dataclasses.dataclass(frozen=True)
class InrPerturbation:
  """The strengths of `perturb_inr` (neural graphs' `INRDataset` defaults).

  Attributes:
    translation: the input shift `t` is uniform in `[-translation, translation]` per input
      coordinate (coordinates span [-1, 1]).
    rotation_degrees: the first layer's weights are rotated by an angle uniform in
      `[-rotation_degrees, rotation_degrees]` (two-dimensional inputs only).
    noise: every layer's weights, and every bias layer of more than one value, are shifted by
      `noise` times their standard deviation within the INR (one constant per layer).
    drop_rate: each weight and bias is zeroed with this probability, the others divided by
      `1 - drop_rate` (as `torch.nn.functional.dropout`).
    first_scale: the first layer's weights are multiplied by a factor uniform in
      `[1 - first_scale, 1 + first_scale]`.
  """

  translation: float = 0.25
  rotation_degrees: float = 45.0
  noise: float = 0.1
  drop_rate: float = 0.01
  first_scale: float = 0.2


def perturb_inr(graph: jraph.GraphsTuple, rng: np.random.Generator,
                strengths: InrPerturbation = InrPerturbation()) -> jraph.GraphsTuple:
  """One SIREN's graph perturbed as neural graphs perturbs its INRs. Host-side.

  The graph is one MLP's (`nodes['layer']` 0 for the inputs, one value per edge and per
  neuron): in the value convention `sin(omega0 * (W x + b))`, a translation `t` of the input
  adds `t @ W_0` to the first biases. In order:

  1. Translation: `t` uniform per input coordinate, a depth `k` uniform in 1..L-1 (L weight
     layers), and `t @ W_0 @ ... @ W_{k-1}` added to the biases of layer k (for k = 1 the
     same function on a shifted input; deeper, a perturbation, as the published code does).
  2. Rotation (two inputs): `W_0 <- R W_0`, R a random rotation of the input plane.
  3. Shift: each layer's weights plus `noise` times their standard deviation (ddof 1), and
     each bias layer of more than one value alike.
  4. Dropout on every weight and bias.
  5. The first layer's weights times a random factor.

  Args:
    graph: one unbatched graph of an MLP-shaped INR (`GraphSet.graph(i)`).
    rng: the random stream.
    strengths: see `InrPerturbation`.

  Returns:
    The graph with `edges['weight']` and `nodes['param']` replaced (float32), everything
    else unchanged.

  Raises:
    ValueError: a graph with more than one value per edge or per neuron.
  """
  s = strengths
  weight = np.array(graph.edges['weight'], np.float32)
  param = np.array(graph.nodes['param'], np.float32)
  if weight.shape[1] != 1 or param.shape[1] != 1:
    raise ValueError('perturb_inr reads MLP graphs (one weight per edge, one bias per neuron), '
                     f'not K={weight.shape[1]}, P={param.shape[1]}')
  w, b = weight[:, 0], param[:, 0]
  layer = np.asarray(graph.nodes['layer'])
  senders, receivers = np.asarray(graph.senders), np.asarray(graph.receivers)
  edge_layer = layer[senders]
  n_layers = int(layer.max())
  inputs = np.flatnonzero(layer == 0)
  new_w, new_b = w.copy(), b.copy()
  # 1. translation through k layers (the unperturbed weights, as the published code)
  carried = np.zeros(len(layer), np.float64)
  carried[inputs] = rng.uniform(-s.translation, s.translation, len(inputs))
  depth = int(rng.integers(1, n_layers)) if n_layers > 1 else 1
  for k in range(depth):
    mask = edge_layer == k
    carried = np.bincount(receivers[mask], carried[senders[mask]] * w[mask],
                          minlength=len(layer))
  new_b[layer == depth] += carried[layer == depth].astype(np.float32)
  # 2. rotation of the input plane: W_0 <- R W_0 (rows of W_0 are the input coordinates)
  first = edge_layer == 0
  if len(inputs) == 2:
    angle = np.deg2rad(rng.uniform(-s.rotation_degrees, s.rotation_degrees))
    cos, sin = np.cos(angle), np.sin(angle)
    pos = np.asarray(graph.nodes['position'])[senders]
    rows = np.zeros((2, len(layer)), np.float64)  # W_0[i, j] by input i and receiver j
    for i in (0, 1):
      rows[i, receivers[first & (pos == i)]] = new_w[first & (pos == i)]
    rotated = np.array([[cos, -sin], [sin, cos]]) @ rows
    for i in (0, 1):
      sel = first & (pos == i)
      new_w[sel] = rotated[i, receivers[sel]]
  # 3. a constant shift per layer
  for k in range(n_layers):
    mask = edge_layer == k
    new_w[mask] += s.noise * new_w[mask].std(ddof=1)
    neurons = layer == k + 1
    if neurons.sum() > 1:
      new_b[neurons] += s.noise * new_b[neurons].std(ddof=1)
  # 4. dropout
  keep = 1.0 - s.drop_rate
  new_w = np.where(rng.random(len(new_w)) < s.drop_rate, 0.0, new_w / keep)
  has_bias = layer > 0
  new_b = np.where(has_bias & (rng.random(len(new_b)) < s.drop_rate), 0.0,
                   np.where(has_bias, new_b / keep, new_b))
  # 5. the first layer rescaled
  new_w[first] *= 1.0 + rng.uniform(-s.first_scale, s.first_scale)
  return graph._replace(
      edges={**graph.edges, 'weight': new_w.astype(np.float32)[:, None]},
      nodes={**graph.nodes, 'param': new_b.astype(np.float32)[:, None]})

"""A zoo of small Flax models for the tests: one per corner case of the tracer.

Each builder returns a :class:`ModelCase` ``(model, variables, example_args, example_kwargs)``
from a fixed seed, so two calls give identical parameters. Inputs have batch size 2. Every
model is small (at most ~3,000 parameters and ~150 neurons) so that graph isomorphism checks
with networkx stay fast.

Zero-initialised biases and unit-initialised normalisation scales are replaced by random values
(see :func:`_break_ties`): with them at their initial constants, two hidden neurons can only be
told apart by their weights, and a change that is *not* a symmetry could look like one.

Corner cases, by model (linen unless noted):

- ``mlp``: plain Dense chain with biases and relu; the simplest parameter graph.
- ``siren``: sine activations ``sin(w0 * x)`` with ``w0 = 30`` on the first layer and ``1``
  after (an INR; the activation must not be mistaken for relu). SIREN initialisation.
- ``cnn_gap``: two 3x3 SAME convolutions, global average pooling (mean over H, W), Dense.
- ``cnn_flatten``: ``Conv -> reshape(B, -1) -> Dense``: each dense input neuron is one
  (position, channel) pair, so a channel fans out to many dense inputs (the reference GMN
  code fails here).
- ``cnn_strided``: a strided VALID convolution, a dilated convolution and one with explicit
  ``((1, 1), (1, 1))`` padding: the stride, dilation and padding must reach the graph.
- ``cnn_grouped``: a depthwise convolution (``feature_group_count == in_features``, channel
  multiplier 2) and a grouped 1x1 convolution (2 groups): only within-group channel pairs are
  edges.
- ``cnn_bn``: BatchNorm with ``use_running_average=True`` and random running mean/var, so the
  running statistics matter and ``apply`` needs no mutable collections.
- ``cnn_gn``: GroupNorm with 2 groups (normalisation statistics shared within a group).
- ``resnet``: residual additions, an identity shortcut, and a strided projection shortcut
  (1x1 conv + BN) that widens 4 -> 6 channels; BN running statistics randomised.
- ``vit``: patch-embedding conv (2x2, stride 2), tokens by reshape, a learnable position
  embedding parameter ``pos_embedding`` added, a pre-LN transformer block with 2-head
  self-attention (head dimension 4) and a gelu MLP, final LayerNorm, mean over tokens.
- ``text_transformer``: ``nn.Embed`` on int32 tokens (an integer input, a gathered parameter
  table), the same block as ``vit``, and a separate (untied) Dense output head.
- ``conv1d``: 1D convolutions (kernel size ``(3,)``) on inputs of shape ``(B, L, C)``.
- ``mlp_nnx``, ``cnn_nnx``: the ``mlp`` and ``cnn_gap`` architectures written with
  ``flax.nnx``; returned with ``variables=None`` and called as ``module(*args)``.

Use :func:`get` to build a case by name; :data:`ALL_LINEN` and :data:`ALL_NNX` list the names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["ModelCase", "ALL_LINEN", "ALL_NNX", "ALL", "get", "apply", "count_params"]

_SEED = 0
_BATCH = 2


class ModelCase(NamedTuple):
  """A model with its variables and an example input.

  Attributes:
    model: a ``flax.linen.Module`` or a ``flax.nnx.Module``.
    variables: the linen variables (``{"params": ..., "batch_stats": ...}``), or ``None``
      for an nnx module (which holds its own state).
    example_args: positional inputs, batch size 2.
    example_kwargs: keyword inputs (empty for every model here).
  """

  model: Any
  variables: dict[str, Any] | None
  example_args: tuple[Any, ...]
  example_kwargs: dict[str, Any]


# ----------------------------------------------------------------------------- helpers


def _gap(x: jax.Array) -> jax.Array:
  """Global average pooling over the spatial axes of a ``[B, *spatial, C]`` array."""
  return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


def _rng(salt: int) -> np.random.Generator:
  """A numpy generator from the fixed seed (numpy, so no XLA compilation per shape)."""
  return np.random.default_rng([_SEED, salt])


def _break_ties(params: Any, rng: np.random.Generator, scale: float = 0.1) -> Any:
  """Adds noise to every floating parameter array whose entries are all equal.

  Host-side (numpy). Biases start at zero and normalisation scales at one; left so, hidden
  neurons are partly indistinguishable by initialisation alone.

  Args:
    params: a pytree of arrays (``variables["params"]`` of a linen model, or the
      ``nnx.State`` of an nnx module's ``nnx.Param``s).
    rng: numpy generator.
    scale: standard deviation of the added noise.

  Returns:
    The pytree with constant leaves perturbed and every other leaf unchanged.
  """

  def perturb(leaf: Any) -> Any:
    arr = np.asarray(leaf)
    if arr.size and np.issubdtype(arr.dtype, np.floating) and np.all(arr == arr.flat[0]):
      noise = rng.normal(scale=scale, size=arr.shape)
      return jnp.asarray((arr + noise).astype(arr.dtype))
    return leaf

  return jax.tree_util.tree_map(perturb, params)


def _randomise_batch_stats(batch_stats: Any, rng: np.random.Generator) -> Any:
  """Replaces BatchNorm running statistics by random ones (``var`` positive).

  Host-side (numpy).

  Args:
    batch_stats: the ``batch_stats`` collection, leaves named ``mean`` and ``var``.
    rng: numpy generator.

  Returns:
    The collection with ``mean ~ N(0, 0.5^2)`` and ``var ~ U(0.5, 1.5)``.

  Raises:
    ValueError: for a leaf named neither ``mean`` nor ``var``.
  """

  def draw(path: tuple[Any, ...], leaf: jax.Array) -> jax.Array:
    name = getattr(path[-1], "key", None)
    if name == "mean":
      value = rng.normal(scale=0.5, size=leaf.shape)
    elif name == "var":
      value = rng.uniform(0.5, 1.5, size=leaf.shape)
    else:
      raise ValueError(f"unexpected batch_stats leaf {jax.tree_util.keystr(path)}")
    return jnp.asarray(value, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, batch_stats)


def _init_linen(model: nn.Module, *args: Any, randomise_bn: bool = False) -> ModelCase:
  """Initialises a linen model from the fixed seed and breaks constant initialisations.

  ``init`` runs under ``jax.jit`` with an ``rbg`` key: XLA's RngBitGenerator compiles several
  times faster on CPU than the default threefry, whose compilation dominated the test
  suite's start-up (about 9 s for ``resnet`` against 1.5 s). The draws are deterministic on a
  given backend but may differ between CPU and GPU; no test should rely on exact values.

  Args:
    model: the module.
    *args: example inputs.
    randomise_bn: whether to draw random BatchNorm running statistics.

  Returns:
    The :class:`ModelCase`.
  """
  key = jax.random.key(_SEED, impl="rbg")
  variables = dict(jax.jit(model.init)(key, *args))
  variables["params"] = _break_ties(variables["params"], _rng(1))
  if randomise_bn:
    variables["batch_stats"] = _randomise_batch_stats(variables["batch_stats"], _rng(2))
  return ModelCase(model, variables, tuple(args), {})


def _input(shape: Sequence[int]) -> jax.Array:
  """A standard normal float32 example input from the fixed seed."""
  return jnp.asarray(_rng(3).normal(size=tuple(shape)), jnp.float32)


# ----------------------------------------------------------------------------- linen


class MLP(nn.Module):
  """Dense 3 -> 5 -> 5 -> 2 with relu."""

  features: Sequence[int] = (5, 5, 2)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i, f in enumerate(self.features):
      x = nn.Dense(f)(x)
      if i < len(self.features) - 1:
        x = nn.relu(x)
    return x


def _uniform_init(bound: Callable[[int], float]) -> nn.initializers.Initializer:
  """``U(-bound(fan_in), bound(fan_in))`` for a Dense kernel of shape ``[fan_in, fan_out]``."""

  def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
    b = bound(shape[0])
    return jax.random.uniform(key, shape, dtype, minval=-b, maxval=b)

  return init


class Siren(nn.Module):
  """SIREN (Sitzmann et al., 2020): 2 -> 8 -> 8 -> 1 with ``sin(w0 * (W x + b))`` activations.

  ``w0 = 30`` on the first layer and ``1`` after. Initialisation as in the paper: the first
  layer draws ``W ~ U(-1/fan_in, 1/fan_in)``, later layers
  ``W ~ U(-sqrt(6/fan_in)/w0, sqrt(6/fan_in)/w0)``; the last layer is linear.
  """

  hidden: Sequence[int] = (8, 8)
  out_features: int = 1
  first_omega: float = 30.0
  hidden_omega: float = 1.0

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    first = _uniform_init(lambda fan_in: 1.0 / fan_in)
    later = _uniform_init(lambda fan_in: float(np.sqrt(6.0 / fan_in)) / self.hidden_omega)
    for i, f in enumerate(self.hidden):
      omega = self.first_omega if i == 0 else self.hidden_omega
      x = jnp.sin(omega * nn.Dense(f, kernel_init=first if i == 0 else later)(x))
    return nn.Dense(self.out_features, kernel_init=later)(x)


class CNNGap(nn.Module):
  """Conv(4, 3x3) relu Conv(4, 3x3) relu, global average pool, Dense(3)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.relu(nn.Conv(4, (3, 3))(x))
    x = nn.relu(nn.Conv(4, (3, 3))(x))
    return nn.Dense(3)(_gap(x))


class CNNFlatten(nn.Module):
  """Conv(3, 3x3) relu, flatten to ``[B, H*W*C]``, Dense(4) relu, Dense(2)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.relu(nn.Conv(3, (3, 3))(x))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(4)(x))
    return nn.Dense(2)(x)


class CNNStrided(nn.Module):
  """Strided VALID conv, dilated SAME conv, explicitly padded conv, GAP, Dense(2).

  Spatial sizes on a 9x9 input: 9 -> 4 (stride 2, VALID) -> 4 (dilation 2, SAME) -> 4
  (padding 1 on each side).
  """

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.relu(nn.Conv(4, (3, 3), strides=2, padding="VALID")(x))
    x = nn.relu(nn.Conv(4, (3, 3), kernel_dilation=2)(x))
    x = nn.relu(nn.Conv(4, (3, 3), padding=((1, 1), (1, 1)))(x))
    return nn.Dense(2)(_gap(x))


class CNNGrouped(nn.Module):
  """Conv(4) relu, depthwise Conv(8, groups=4) relu, grouped 1x1 Conv(4, groups=2) relu, GAP,
  Dense(2)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.relu(nn.Conv(4, (3, 3))(x))
    x = nn.relu(nn.Conv(8, (3, 3), feature_group_count=4)(x))  # depthwise, multiplier 2
    x = nn.relu(nn.Conv(4, (1, 1), feature_group_count=2)(x))
    return nn.Dense(2)(_gap(x))


class CNNBatchNorm(nn.Module):
  """Conv(4) BN relu Conv(4) BN relu, GAP, Dense(3); BN in inference mode."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for _ in range(2):
      x = nn.Conv(4, (3, 3))(x)
      x = nn.BatchNorm(use_running_average=True)(x)
      x = nn.relu(x)
    return nn.Dense(3)(_gap(x))


class CNNGroupNorm(nn.Module):
  """Conv(4) GroupNorm(2 groups) relu, GAP, Dense(3)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(4, (3, 3))(x)
    x = nn.relu(nn.GroupNorm(num_groups=2)(x))
    return nn.Dense(3)(_gap(x))


class BasicBlock(nn.Module):
  """ResNet basic block (He et al., 2016): conv-BN-relu-conv-BN plus shortcut, then relu.

  The shortcut is the identity when shape is kept, else a strided 1x1 conv + BN.
  """

  features: int
  strides: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.Conv(self.features, (3, 3), strides=self.strides, use_bias=False)(x)
    y = nn.relu(nn.BatchNorm(use_running_average=True)(y))
    y = nn.Conv(self.features, (3, 3), use_bias=False)(y)
    y = nn.BatchNorm(use_running_average=True)(y)
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = nn.Conv(
          self.features, (1, 1), strides=self.strides, use_bias=False, name="proj_conv"
      )(x)
      shortcut = nn.BatchNorm(use_running_average=True, name="proj_bn")(shortcut)
    return nn.relu(y + shortcut)


class ResNet(nn.Module):
  """Stem Conv(4)+BN+relu, block(4), block(6, stride 2, projection shortcut), GAP, Dense(3)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(4, (3, 3), use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
    x = BasicBlock(4)(x)
    x = BasicBlock(6, strides=2)(x)
    return nn.Dense(3)(_gap(x))


class TransformerBlock(nn.Module):
  """Pre-LN transformer block (Vaswani et al., 2017; pre-LN as in ViT).

  ``x + MHA(LN(x))`` then ``x + MLP(LN(x))`` with a gelu MLP.
  """

  width: int = 8
  num_heads: int = 2
  mlp_width: int = 16

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = nn.LayerNorm()(x)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, qkv_features=self.width)(y)
    x = x + y
    y = nn.LayerNorm()(x)
    y = nn.gelu(nn.Dense(self.mlp_width)(y))
    y = nn.Dense(self.width)(y)
    return x + y


class ViT(nn.Module):
  """Tiny ViT (Dosovitskiy et al., 2021): 2x2 patches, position embedding, one block."""

  width: int = 8
  num_classes: int = 3

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(self.width, (2, 2), strides=2, padding="VALID", name="patch_embed")(x)
    x = x.reshape((x.shape[0], -1, self.width))  # [B, T, width]
    pos = self.param("pos_embedding", nn.initializers.normal(0.02), (1, x.shape[1], self.width))
    x = x + pos
    x = TransformerBlock(self.width)(x)
    x = nn.LayerNorm()(x)
    return nn.Dense(self.num_classes)(jnp.mean(x, axis=1))


class TextTransformer(nn.Module):
  """Token embedding, one pre-LN block, LayerNorm, mean over tokens, untied Dense head."""

  vocab_size: int = 11
  width: int = 8
  num_classes: int = 3

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    x = nn.Embed(num_embeddings=self.vocab_size, features=self.width)(tokens)
    x = TransformerBlock(self.width)(x)
    x = nn.LayerNorm()(x)
    return nn.Dense(self.num_classes, name="head")(jnp.mean(x, axis=1))


class Conv1D(nn.Module):
  """Conv(4, (3,)) relu Conv(4, (3,)) relu, mean over length, Dense(2)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.relu(nn.Conv(4, kernel_size=(3,))(x))
    x = nn.relu(nn.Conv(4, kernel_size=(3,))(x))
    return nn.Dense(2)(_gap(x))


# ----------------------------------------------------------------------------- nnx


class MLPNNX(nnx.Module):
  """The ``mlp`` architecture in ``flax.nnx``: Linear 3 -> 5 -> 5 -> 2 with relu."""

  def __init__(self, rngs: nnx.Rngs):
    self.linear1 = nnx.Linear(3, 5, rngs=rngs)
    self.linear2 = nnx.Linear(5, 5, rngs=rngs)
    self.linear3 = nnx.Linear(5, 2, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.linear1(x))
    x = nnx.relu(self.linear2(x))
    return self.linear3(x)


class CNNNNX(nnx.Module):
  """The ``cnn_gap`` architecture in ``flax.nnx``."""

  def __init__(self, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(2, 4, (3, 3), rngs=rngs)
    self.conv2 = nnx.Conv(4, 4, (3, 3), rngs=rngs)
    self.linear = nnx.Linear(4, 3, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.conv1(x))
    x = nnx.relu(self.conv2(x))
    return self.linear(_gap(x))


def _nnx_rngs() -> nnx.Rngs:
  """``nnx.Rngs`` from the fixed seed with an ``rbg`` key (fast to compile; see
  :func:`_init_linen`)."""
  return nnx.Rngs(jax.random.key(_SEED, impl="rbg"))


def _init_nnx(module: nnx.Module, *args: Any) -> ModelCase:
  """Breaks constant initialisations of an nnx module in place and packs the case."""
  nnx.update(module, _break_ties(nnx.state(module, nnx.Param), _rng(1)))
  return ModelCase(module, None, tuple(args), {})


# ----------------------------------------------------------------------------- builders


def mlp() -> ModelCase:
  """Dense 3 -> 5 -> 5 -> 2; input ``[2, 3]``."""
  return _init_linen(MLP(), _input((_BATCH, 3)))


def siren() -> ModelCase:
  """SIREN 2 -> 8 -> 8 -> 1; input coordinates ``[2, 2]`` in ``[-1, 1]``."""
  coords = jnp.asarray(_rng(3).uniform(-1.0, 1.0, size=(_BATCH, 2)), jnp.float32)
  return _init_linen(Siren(), coords)


def cnn_gap() -> ModelCase:
  """Two convs, global average pooling, Dense(3); input ``[2, 6, 6, 2]``."""
  return _init_linen(CNNGap(), _input((_BATCH, 6, 6, 2)))


def cnn_flatten() -> ModelCase:
  """Conv -> flatten -> Dense -> Dense; input ``[2, 4, 4, 1]``."""
  return _init_linen(CNNFlatten(), _input((_BATCH, 4, 4, 1)))


def cnn_strided() -> ModelCase:
  """Strided/VALID, dilated and explicitly padded convs; input ``[2, 9, 9, 1]``."""
  return _init_linen(CNNStrided(), _input((_BATCH, 9, 9, 1)))


def cnn_grouped() -> ModelCase:
  """Depthwise and grouped convs; input ``[2, 6, 6, 2]``."""
  return _init_linen(CNNGrouped(), _input((_BATCH, 6, 6, 2)))


def cnn_bn() -> ModelCase:
  """Convs with BatchNorm (random running stats); input ``[2, 6, 6, 2]``."""
  return _init_linen(CNNBatchNorm(), _input((_BATCH, 6, 6, 2)), randomise_bn=True)


def cnn_gn() -> ModelCase:
  """Conv with GroupNorm(2); input ``[2, 6, 6, 2]``."""
  return _init_linen(CNNGroupNorm(), _input((_BATCH, 6, 6, 2)))


def resnet() -> ModelCase:
  """Tiny ResNet with a projection shortcut (random BN stats); input ``[2, 8, 8, 2]``."""
  return _init_linen(ResNet(), _input((_BATCH, 8, 8, 2)), randomise_bn=True)


def vit() -> ModelCase:
  """Tiny ViT, 4 tokens of width 8, 2 heads; input ``[2, 4, 4, 1]``."""
  return _init_linen(ViT(), _input((_BATCH, 4, 4, 1)))


def text_transformer() -> ModelCase:
  """Embedding (11 tokens, width 8) + one block + head; input int32 tokens ``[2, 5]``."""
  tokens = jnp.asarray(_rng(3).integers(0, 11, size=(_BATCH, 5)), jnp.int32)
  return _init_linen(TextTransformer(), tokens)


def conv1d() -> ModelCase:
  """Two 1D convs, mean over length, Dense(2); input ``[2, 7, 2]``."""
  return _init_linen(Conv1D(), _input((_BATCH, 7, 2)))


def mlp_nnx() -> ModelCase:
  """``mlp`` in ``flax.nnx``; input ``[2, 3]``."""
  return _init_nnx(MLPNNX(_nnx_rngs()), _input((_BATCH, 3)))


def cnn_nnx() -> ModelCase:
  """``cnn_gap`` in ``flax.nnx``; input ``[2, 6, 6, 2]``."""
  return _init_nnx(CNNNNX(_nnx_rngs()), _input((_BATCH, 6, 6, 2)))


_BUILDERS: dict[str, Callable[[], ModelCase]] = {
    "mlp": mlp,
    "siren": siren,
    "cnn_gap": cnn_gap,
    "cnn_flatten": cnn_flatten,
    "cnn_strided": cnn_strided,
    "cnn_grouped": cnn_grouped,
    "cnn_bn": cnn_bn,
    "cnn_gn": cnn_gn,
    "resnet": resnet,
    "vit": vit,
    "text_transformer": text_transformer,
    "conv1d": conv1d,
    "mlp_nnx": mlp_nnx,
    "cnn_nnx": cnn_nnx,
}

ALL_LINEN: list[str] = [
    "mlp", "siren", "cnn_gap", "cnn_flatten", "cnn_strided", "cnn_grouped", "cnn_bn",
    "cnn_gn", "resnet", "vit", "text_transformer", "conv1d",
]
ALL_NNX: list[str] = ["mlp_nnx", "cnn_nnx"]
ALL: list[str] = ALL_LINEN + ALL_NNX


@functools.lru_cache(maxsize=None)
def _cached_linen(name: str) -> ModelCase:
  return _BUILDERS[name]()


def get(name: str) -> ModelCase:
  """The named model case (same seed, so the same parameters every call).

  Linen cases are built once per process and cached: each call returns fresh containers
  (``variables`` dicts, kwargs) around the same immutable arrays, so a test may edit what it
  gets. nnx modules are mutable and are rebuilt on every call.

  Args:
    name: one of :data:`ALL_LINEN` or :data:`ALL_NNX`.

  Returns:
    ``(model, variables, example_args, example_kwargs)``; ``variables`` is ``None`` for nnx.

  Raises:
    KeyError: for an unknown name, listing the known ones.
  """
  if name not in _BUILDERS:
    raise KeyError(f"unknown test model {name!r}; known: {sorted(_BUILDERS)}")
  if name in ALL_NNX:
    return _BUILDERS[name]()
  case = _cached_linen(name)
  return case._replace(
      variables=jax.tree_util.tree_map(lambda x: x, case.variables),
      example_kwargs=dict(case.example_kwargs),
  )


def apply(case: ModelCase) -> jax.Array:
  """Runs a case on its example input (linen ``apply`` or an nnx call).

  Args:
    case: a :class:`ModelCase`.

  Returns:
    The model output, batch first.
  """
  model, variables, args, kwargs = case
  if variables is None:
    return model(*args, **kwargs)
  return model.apply(variables, *args, **kwargs)


def count_params(case: ModelCase) -> int:
  """Number of parameter scalars (``params`` collection / ``nnx.Param``) of a case."""
  if case.variables is None:
    tree = nnx.state(case.model, nnx.Param)
  else:
    tree = case.variables["params"]
  return sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(tree))


if __name__ == "__main__":
  for _name in ALL:
    _case = get(_name)
    _out = np.asarray(apply(_case))
    assert _out.shape[0] == _BATCH and np.all(np.isfinite(_out)), _name
    print(f"{_name:18s} out {str(_out.shape):8s} params {count_params(_case):5d}")

"""transformers model directories for `gmn-convert`: `config.json` + Flax weights. Host-side.

What `save_pretrained` of a transformers 4.x Flax model writes, and what people download from
the Hub: `config.json` names the architecture (`architectures`, else `model_type`), the weights
are `flax_model.msgpack` (`flax.serialization.to_bytes` of the params), sharded as
`flax_model-0000k-of-0000n.msgpack` with `flax_model.msgpack.index.json`, or a `model.safetensors`
saved from Flax (its metadata says `format: flax`). The module is the library's own Flax class,
built with `_do_init=False` (no random initialisation: the weights come from the file) and called
the way its `FlaxPreTrainedModel.__call__` is called: `model(*inputs, params=params)`.

Nothing is downloaded: the config is read with `local_files_only=True`.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gmn_jax.io.checkpoints import (NOT_CHECKPOINT, NOT_IMPORTABLE, USAGE, ConversionError,
                                    read_msgpack)

FLAX_WEIGHTS = 'flax_model.msgpack'
FLAX_INDEX = 'flax_model.msgpack.index.json'
SAFETENSORS = 'model.safetensors'
_OTHER_WEIGHTS = ('pytorch_model.bin', 'pytorch_model.bin.index.json', 'model.safetensors',
                  'model.safetensors.index.json', 'tf_model.h5')
_SEQUENCE = 8  # tokens in the example input: any length traces the same graph


@dataclasses.dataclass
class TransformersModel:
  """A transformers Flax model read from a directory, ready to trace.

  Attributes:
    name: the Flax class name, e.g. 'FlaxBertModel'.
    call: `call(variables, *inputs)` = `model(*inputs, params=variables['params'])`.
    template: `{'params': shapes}` (`jax.ShapeDtypeStruct` leaves): what the class expects.
    params: the weights as read, numpy leaves (`{'params': ...}` found in them by path).
    inputs: the example inputs (token ids are int32 in [2, 10); images channels-first).
    weights: the file(s) the weights came from.
  """

  name: str
  call: Callable[..., Any]
  template: Any
  params: Any
  inputs: list[jax.Array]
  weights: list[pathlib.Path]


def is_transformers_dir(path: pathlib.Path) -> bool:
  """A folder with `config.json` that is not an orbax checkpoint."""
  return (path.is_dir() and (path / 'config.json').is_file()
          and not (path / '_CHECKPOINT_METADATA').exists() and not (path / '_METADATA').exists())


def _merge(into: dict, tree: Any) -> None:
  for key, value in tree.items():
    if isinstance(value, dict) and isinstance(into.get(key), dict):
      _merge(into[key], value)
    else:
      into[key] = value


def _safetensors_flax(file: pathlib.Path) -> Any | None:
  """The params in a Flax-saved `model.safetensors` (keys joined by '.'); None if PyTorch's."""
  try:
    from safetensors import safe_open  # pylint: disable=g-import-not-at-top
    with safe_open(str(file), framework='np') as f:
      if (f.metadata() or {}).get('format') != 'flax':
        return None
      flat = {k: f.get_tensor(k) for k in f.keys()}
  except ImportError:
    return None
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(NOT_CHECKPOINT, f'{file} cannot be read by safetensors '
                          f'({type(e).__name__}: {e}). Download it again.') from e
  tree: dict = {}
  for key, value in flat.items():
    *parents, leaf = key.split('.')
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def read_weights(path: pathlib.Path) -> tuple[Any, list[pathlib.Path]]:
  """The Flax weights of a transformers directory and the files read. Host-side.

  Raises:
    ConversionError(4): no Flax weights (naming what the directory holds, and how to make Flax
      weights from PyTorch ones), or a corrupt/truncated file (naming it).
  """
  if (path / FLAX_WEIGHTS).is_file():
    return read_msgpack(path / FLAX_WEIGHTS), [path / FLAX_WEIGHTS]
  if (path / FLAX_INDEX).is_file():
    try:
      shards = sorted(set(json.loads((path / FLAX_INDEX).read_text())['weight_map'].values()))
    except (ValueError, KeyError, AttributeError) as e:
      raise ConversionError(NOT_CHECKPOINT, f'{path / FLAX_INDEX} is not a transformers shard '
                            f'index ({type(e).__name__}: {e}). Download it again.') from e
    missing = [s for s in shards if not (path / s).is_file()]
    if missing:
      raise ConversionError(NOT_CHECKPOINT, f'{path / FLAX_INDEX} lists shards that are not in '
                            f'{path}: {missing[:5]}. Download every shard.')
    tree: dict = {}
    for shard in shards:
      _merge(tree, read_msgpack(path / shard))
    return tree, [path / s for s in shards]
  if (path / SAFETENSORS).is_file():
    tree = _safetensors_flax(path / SAFETENSORS)
    if tree is not None:
      return tree, [path / SAFETENSORS]
  others = [name for name in _OTHER_WEIGHTS if (path / name).exists()]
  if others:
    raise ConversionError(NOT_CHECKPOINT, f'{path} holds {others} but no Flax weights '
                          f'({FLAX_WEIGHTS}): gmn-convert reads Flax models only. Make the '
                          'Flax weights once with transformers (needs torch): '
                          f'FlaxAutoModel.from_pretrained("{path}", from_pt=True)'
                          '.save_pretrained("flax_dir"), then convert flax_dir.')
  held = sorted(p.name for p in path.iterdir())
  raise ConversionError(NOT_CHECKPOINT, f'{path} has config.json but no {FLAX_WEIGHTS} (it '
                        f'holds {held[:12]}). Download {FLAX_WEIGHTS} too, or save the model '
                        'with FlaxPreTrainedModel.save_pretrained.')


def _flax_class(config: Any, path: pathlib.Path) -> type:
  import transformers  # pylint: disable=g-import-not-at-top
  from transformers.models.auto import modeling_flax_auto as auto  # pylint: disable=g-import-not-at-top
  for arch in getattr(config, 'architectures', None) or ():
    cls = getattr(transformers, arch if arch.startswith('Flax') else f'Flax{arch}', None)
    if cls is not None:
      return cls
  name = auto.FLAX_MODEL_MAPPING_NAMES.get(config.model_type)
  if name is None:
    raise ConversionError(NOT_IMPORTABLE, f'{path / "config.json"}: transformers '
                          f'{transformers.__version__} has no Flax class for architectures '
                          f'{getattr(config, "architectures", None)} (model_type '
                          f'{config.model_type!r}); its Flax families are '
                          f'{sorted(auto.FLAX_MODEL_MAPPING_NAMES)}.')
  return getattr(transformers, name)


def _example(name: str, config: Any, given: Any) -> jax.Array:
  """The example value of the call argument `name`. `given`: None (a default from the config),
  an array, a shape (float32) or a `jax.ShapeDtypeStruct` (token ids 2..9 if integer, else
  zeros)."""
  if isinstance(given, (tuple, list)):
    given = jax.ShapeDtypeStruct(tuple(given), jnp.float32)
  if isinstance(given, jax.ShapeDtypeStruct):
    if jnp.issubdtype(given.dtype, jnp.integer):
      size = int(np.prod(given.shape))
      return jnp.asarray((2 + np.arange(size) % 8).reshape(given.shape), given.dtype)
    return jnp.zeros(given.shape, given.dtype)
  if given is not None:
    return jnp.asarray(given)
  sub = getattr(config, 'vision_config', None) or config
  if name in ('input_ids', 'decoder_input_ids'):
    return jnp.asarray(2 + np.arange(_SEQUENCE)[None] % 8, jnp.int32)
  if name == 'pixel_values':
    size = sub.image_size if isinstance(sub.image_size, int) else sub.image_size[0]
    return jnp.zeros((1, sub.num_channels, size, size), jnp.float32)
  if name == 'input_values':
    return jnp.zeros((1, 400), jnp.float32)
  if name == 'input_features':
    return jnp.zeros((1, config.num_mel_bins, 2 * config.max_source_positions), jnp.float32)
  raise ConversionError(USAGE, f'no default example for the argument {name!r} of this model: '
                        'pass --input-shape for each of its required inputs, in order.')


def load_transformers_dir(path: pathlib.Path, inputs: Sequence[Any] = ()) -> TransformersModel:
  """Reads `config.json` and the Flax weights of a transformers model directory. Host-side.

  Args:
    path: the directory `save_pretrained` wrote (or a downloaded Hub snapshot).
    inputs: the model's required inputs, in order (arrays, shapes, `jax.ShapeDtypeStruct`s:
      see `_example`); by default token ids `[1, 8]` int32, `pixel_values` `[1, C, H, W]`
      from the config, raw audio `[1, 400]`, or log-mel features `[1, mel bins, frames]`. An
      encoder-decoder also gets `decoder_input_ids` (the token ids).

  Raises:
    ConversionError: transformers missing or no Flax class (6), no or corrupt Flax weights (4),
      no default input for a required argument (2).
  """
  try:
    import transformers  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConversionError(NOT_IMPORTABLE, f'{path} is a transformers model directory; reading '
                          "it needs transformers 4.x: pip install 'gmn-jax[hf]'.") from e
  try:
    config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(NOT_CHECKPOINT, f'transformers cannot read {path / "config.json"}: '
                          f'{type(e).__name__}: {e}') from e
  cls = _flax_class(config, path)
  params, files = read_weights(path)  # before building: a directory without weights costs nothing
  try:
    model = cls(config, _do_init=False)
  except Exception as e:  # pylint: disable=broad-except
    raise ConversionError(NOT_IMPORTABLE, f'cannot build {cls.__name__} from '
                          f'{path / "config.json"}: {type(e).__name__}: {e}') from e
  signature = inspect.signature(type(model).__call__).parameters
  required = [n for n, p in signature.items() if n != 'self' and p.default is p.empty
              and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
  if inputs and len(inputs) != len(required):
    raise ConversionError(USAGE, f'{cls.__name__} takes {len(required)} required input(s) '
                          f'{required}; --input-shape was given {len(inputs)} time(s).')
  given = list(inputs) or [None] * len(required)
  inputs = [_example(n, config, x) for n, x in zip(required, given)]
  decoder = (getattr(config, 'is_encoder_decoder', False) and 'decoder_input_ids' in signature
             and 'decoder_input_ids' not in required)
  if decoder:
    ids = inputs[required.index('input_ids')] if 'input_ids' in required else _example(
        'decoder_input_ids', config, None)

    def call(variables, *args):
      return model(*args, decoder_input_ids=ids, params=variables['params'])
  else:
    def call(variables, *args):
      return model(*args, params=variables['params'])
  return TransformersModel(name=cls.__name__, call=call,
                           template={'params': model.params_shape_tree}, params=params,
                           inputs=inputs, weights=files)

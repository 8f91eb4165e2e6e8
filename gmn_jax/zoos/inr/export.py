"""Writing INR zoos in DWSNets' published format, which the official DWSNets, neural-graphs
and ScaleGMN loaders read (and `published.load_dwsnets_inrs` reads back). Host-side.

The format (DWSNets' and neural-graphs' `INRDataset`): one PyTorch state dict per INR, read
with `torch.load(path, map_location=...)`, whose 'weight' keys in order are the layers'
`[out, in]` kernels and 'bias' keys their `[out]` biases (DWSNets' `INR` names them
`seq.<i>.weight` / `seq.<i>.bias`), and a split JSON `{split: {"path": [...], "label":
[...]}}` whose paths are relative to the data set's folder (`dataset_dir`) and whose labels
the loaders pass through `int()`. The SIREN the format implies is DWSNets' `INR`: sine layers
with omega0 = 30, a linear last layer, output + 0.5, fitted to pixels in [0, 1] on
`np.meshgrid`'s default 'xy' coordinates in [-1, 1] (`siren.CONVENTIONS['dwsnets']`). A zoo
fitted in another convention or with another omega0 is refused: its INRs would be read as
other functions.

The state dicts are written without torch (`write_torch_state_dict`): the zip archive
`torch.save` writes, holding a protocol-2 pickle of an `OrderedDict` of tensors (only
`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and torch storage types, all on
`torch.load`'s `weights_only` allow-list) and one raw little-endian file per tensor.

Layout of an export directory:

  splits.json                                  the split file (written last)
  export.json                                  the convention, the zoo's config, the rows
                                               of each split and the training split's
                                               per-layer statistics (neural-graphs'
                                               `data.stats`)
  images.npz                                   the zoo's target images and labels
  inrs/<split>_<label>_<image>/copy_<c>/model_final.pth   one INR
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import struct
import zipfile
from typing import Any, Mapping, Sequence

import numpy as np

from gmn_jax.zoos import shards as shards_lib
from gmn_jax.zoos.cnn.config import ZooError
from gmn_jax.zoos.inr import siren as siren_lib
from gmn_jax.zoos.inr.zoo import InrZoo

EXPORT_FORMAT = 'gmn_jax.dwsnets_export/1'
DWSNETS_OMEGA0 = 30.0  # DWSNets' `Siren(w0=30.0)`, fixed in its INR class
SPLITS = ('train', 'val', 'test')

# numpy dtype -> torch storage class name (the types `torch.save` pickles).
_STORAGE_NAMES = {np.dtype(np.float32): 'FloatStorage', np.dtype(np.float64): 'DoubleStorage',
                  np.dtype(np.float16): 'HalfStorage', np.dtype(np.int64): 'LongStorage',
                  np.dtype(np.int32): 'IntStorage', np.dtype(np.int16): 'ShortStorage',
                  np.dtype(np.int8): 'CharStorage', np.dtype(np.uint8): 'ByteStorage',
                  np.dtype(np.bool_): 'BoolStorage'}


def _global(module: str, name: str) -> bytes:
  return b'c' + module.encode() + b'\n' + name.encode() + b'\n'  # GLOBAL


def _string(text: str) -> bytes:
  data = text.encode()
  return b'X' + struct.pack('<I', len(data)) + data  # BINUNICODE


def _int(value: int) -> bytes:
  if not 0 <= value < 2 ** 31:
    raise ValueError(f'{value} does not fit a pickle BININT')
  return b'J' + struct.pack('<i', value)


def _tuple(items: Sequence[bytes]) -> bytes:
  return b'(' + b''.join(items) + b't'  # MARK ... TUPLE


def _state_dict_pickle(state: Mapping[str, np.ndarray]) -> bytes:
  """Protocol-2 pickle of `OrderedDict(name -> tensor)`, tensor i in storage file `i`."""
  empty_ordered_dict = _global('collections', 'OrderedDict') + b')R'  # EMPTY_TUPLE REDUCE
  out = [b'\x80\x02', empty_ordered_dict, b'(']  # PROTO 2, the dict, MARK
  for key, (name, array) in enumerate(state.items()):
    storage = _tuple([_string('storage'), _global('torch', _STORAGE_NAMES[array.dtype]),
                      _string(str(key)), _string('cpu'), _int(array.size)]) + b'Q'  # BINPERSID
    strides = np.cumprod((1,) + array.shape[::-1])[:-1][::-1]  # contiguous, in elements
    args = _tuple([storage, _int(0), _tuple([_int(int(n)) for n in array.shape]),
                   _tuple([_int(int(s)) for s in strides]), b'\x89',  # NEWFALSE
                   empty_ordered_dict])  # requires_grad, backward hooks
    out += [_string(name), _global('torch._utils', '_rebuild_tensor_v2'), args, b'R']
  out.append(b'u.')  # SETITEMS, STOP
  return b''.join(out)


def write_torch_state_dict(path: str | os.PathLike, state: Mapping[str, np.ndarray]) -> None:
  """Writes `{name: array}` as `torch.save(OrderedDict of tensors, path)` would, without
  torch: `torch.load` (also with `weights_only=True`) and `published.read_torch_state_dict`
  read it back bit for bit. Written to a temporary name and moved into place. Host-side.

  Raises:
    ValueError: an array of a dtype torch storages do not have (e.g. complex), or a name
      that is not a string.
  """
  path = pathlib.Path(path)
  arrays = {}
  for name, value in state.items():
    array = np.asarray(value)
    if not isinstance(name, str) or array.dtype not in _STORAGE_NAMES:
      raise ValueError(f'{path}: cannot write {name!r} ({array.dtype}) as a torch tensor; '
                       f'names must be strings and dtypes one of '
                       f'{sorted(str(d) for d in _STORAGE_NAMES)}')
    arrays[name] = np.ascontiguousarray(array, array.dtype.newbyteorder('<'))
  prefix = path.stem or 'archive'
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w', zipfile.ZIP_STORED) as archive:
    archive.writestr(f'{prefix}/data.pkl', _state_dict_pickle(arrays))
    archive.writestr(f'{prefix}/byteorder', 'little')
    for key, array in enumerate(arrays.values()):
      archive.writestr(f'{prefix}/data/{key}', array.tobytes())
    archive.writestr(f'{prefix}/version', '3\n')
  shards_lib.write_atomic(path, lambda f: f.write(buffer.getvalue()))


def check_dwsnets_convention(zoo: InrZoo) -> None:
  """Raises ZooError unless the zoo's INRs are DWSNets' SIRENs in its value convention
  (pixels in [0, 1], output + 0.5, 'xy' coordinates, omega0 = 30) on square images.
  Host-side."""
  config = zoo.config
  conv, want = config.conv, siren_lib.CONVENTIONS['dwsnets']
  problems = []
  if (conv.low, conv.high, conv.output_offset, conv.indexing) != (
      want.low, want.high, want.output_offset, want.indexing):
    problems.append(f'its convention is {config.convention!r} (pixels in [{conv.low:g}, '
                    f'{conv.high:g}], output + {conv.output_offset:g}, {conv.indexing!r} '
                    'coordinates), the format implies pixels in [0, 1], output + 0.5, \'xy\'')
  if config.omega0 != DWSNETS_OMEGA0:
    problems.append(f'its omega0 is {config.omega0:g}, the format implies '
                    f'{DWSNETS_OMEGA0:g}')
  height, width = zoo.images.shape[1:3]
  if height != width:
    problems.append(f'its images are {height}x{width}: DWSNets\' coordinates '
                    '(`make_coordinates`: meshgrid of linspace(H) and linspace(W)) match ours '
                    'only on square images')
  if problems:
    raise ZooError('this INR zoo cannot be exported in DWSNets\' format: '
                   + '; '.join(problems) + ". Fit it with InrZooConfig(convention='dwsnets', "
                   'omega0=30.0); the loaders would read its INRs as other functions')


def dwsnets_state_dict(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """One INR's `Siren` variables `{'params': {'Dense_i': {'kernel' [in, out], 'bias'}}}` as
  DWSNets' `INR` state dict: `seq.<i>.weight` `[out, in]` and `seq.<i>.bias`, float32, in
  layer order. Host-side."""
  layers = params['params']
  state = {}
  for i in range(len(layers)):
    layer = layers[f'Dense_{i}']
    state[f'seq.{i}.weight'] = np.asarray(layer['kernel'], np.float32).T
    state[f'seq.{i}.bias'] = np.asarray(layer['bias'], np.float32)
  return state


def layer_statistics(zoo: InrZoo, rows: np.ndarray) -> dict[str, list[float]]:
  """Per-layer mean and standard deviation (ddof 1, as torch's `std`) of the weights and
  biases over INRs `rows`: neural-graphs' `data.stats` (`weights_mean`, `weights_std`,
  `biases_mean`, `biases_std`). Host-side."""
  layers = zoo.params['params']
  stats: dict[str, list[float]] = {k: [] for k in ('weights_mean', 'weights_std',
                                                   'biases_mean', 'biases_std')}
  for i in range(len(layers)):
    for kind, leaf in (('weights', 'kernel'), ('biases', 'bias')):
      values = np.asarray(layers[f'Dense_{i}'][leaf])[rows].astype(np.float64)
      stats[f'{kind}_mean'].append(float(values.mean()))
      stats[f'{kind}_std'].append(float(values.std(ddof=1)))
  return stats


def export_dwsnets(zoo: InrZoo, directory: str | os.PathLike,
                   splits: Mapping[str, Sequence[int] | np.ndarray], *,
                   overwrite: bool = False) -> pathlib.Path:
  """Writes INRs of `zoo` in DWSNets' format (see the module docstring). Host-side.

  Read it back with `load_dwsnets_inrs(directory / 'splits.json', split)` or run the official
  code with `dataset_dir=<directory>` and `splits_path=splits.json` (neural-graphs: also
  `data.stats` from `export.json`'s `stats`, its INR config's `hidden_features` and
  `out_features`).

  Args:
    zoo: an INR zoo fitted in the DWSNets convention with omega0 = 30.
    directory: the data set's folder (created).
    splits: INR rows (indices into `zoo.records`) of 'train', 'val' and 'test', in the order
      the split file lists them; a row in two splits is refused.
    overwrite: replace an earlier export in `directory` (its INR files are kept or rewritten,
      stale ones are not deleted).

  Returns:
    The split file's path.

  Raises:
    ZooError: the zoo is in another convention or omega0 (`check_dwsnets_convention`),
      a split is missing, empty or out of range, a row is in two splits, or `directory`
      holds an export already and `overwrite` is False.
  """
  check_dwsnets_convention(zoo)
  directory = pathlib.Path(directory)
  split_file = directory / 'splits.json'
  if split_file.exists() and not overwrite:
    raise ZooError(f'{directory} holds an exported data set already ({split_file}); pass '
                   'overwrite=True or another directory')
  rows = {}
  for name in SPLITS:
    if name not in splits or len(splits[name]) == 0:
      raise ZooError(f'split {name!r} is missing or empty; give rows for {SPLITS}')
    rows[name] = np.asarray(splits[name], np.int64)
    if rows[name].min() < 0 or rows[name].max() >= len(zoo):
      raise ZooError(f'split {name!r} has rows outside the zoo\'s {len(zoo)} INRs')
  every = np.concatenate(list(rows.values()))
  if len(np.unique(every)) != len(every):
    raise ZooError('a row is listed twice (in one split or in two); the splits must be '
                   'disjoint')
  directory.mkdir(parents=True, exist_ok=True)
  records = zoo.records
  split_data: dict[str, dict[str, list]] = {}
  for name, chosen in rows.items():
    paths, labels = [], []
    for row in chosen:
      label, image, copy = (int(records[k][row]) for k in ('label', 'image', 'copy'))
      relative = f'inrs/{name}_{label}_{image}/copy_{copy}/model_final.pth'
      one = {'params': {layer: {k: v[row] for k, v in leaves.items()}
                        for layer, leaves in zoo.params['params'].items()}}
      (directory / relative).parent.mkdir(parents=True, exist_ok=True)
      write_torch_state_dict(directory / relative, dwsnets_state_dict(one))
      paths.append(relative)
      labels.append(label)
    split_data[name] = {'path': paths, 'label': labels}
  shards_lib.write_atomic(directory / 'images.npz', lambda f: np.savez(
      f, images=zoo.images, labels=zoo.labels))
  conv = zoo.config.conv
  shards_lib.write_json_atomic(directory / 'export.json', {
      'format': EXPORT_FORMAT, 'convention': zoo.config.convention,
      'pixels': [conv.low, conv.high], 'output_offset': conv.output_offset,
      'indexing': conv.indexing, 'omega0': zoo.config.omega0,
      'hidden': list(zoo.config.hidden), 'out_features': int(zoo.images.shape[-1]),
      'image_shape': list(zoo.images.shape[1:3]), 'zoo_config': zoo.config.to_json(),
      'rows': {name: r.tolist() for name, r in rows.items()},
      'stats': layer_statistics(zoo, rows['train'])})
  shards_lib.write_json_atomic(split_file, split_data)
  return split_file


__all__ = ['DWSNETS_OMEGA0', 'EXPORT_FORMAT', 'check_dwsnets_convention', 'dwsnets_state_dict',
           'export_dwsnets', 'layer_statistics', 'write_torch_state_dict']

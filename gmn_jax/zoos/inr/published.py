"""Readers for published INR data sets: DWSNets' MNIST / Fashion-MNIST SIRENs (Navon et al.
2023; also read by neural graphs and ScaleGMN) and NFN's MNIST / Fashion-MNIST / CIFAR-10
SIRENs (Zhou et al. 2023, `load_nfn_sirens`), without PyTorch. Host-side.

DWSNets ships one PyTorch state dict per INR (`torch.save(model.state_dict(), path)`: a zip
archive holding `<name>/data.pkl` and one raw little-endian file `<name>/data/<key>` per
tensor storage) and a split JSON, `{split: {"path": [...], "label": [...]}}`.
`read_torch_state_dict` reads such a file without importing torch and without arbitrary
unpickling: its unpickler resolves only `collections.OrderedDict`, torch's tensor-rebuild
function and torch's storage types (anything else is refused), and rebuilds each tensor as a
numpy array from the raw storage bytes.

`load_dwsnets_inrs` turns the SIRENs' state dicts (keys with 'weight' and 'bias' in layer
order, PyTorch's `[out, in]` kernels) into this package's `Siren` parameters
(`{'params': {'Dense_i': {'kernel' [in, out], 'bias' [out]}}}`, stacked over INRs), in the
DWSNets value convention (`siren.CONVENTIONS['dwsnets']`: pixels in [0, 1], output + 0.5,
omega0 = 30). A corrupt or foreign file is named in the error; with `skip_corrupt=True` the
others are read and the refused ones listed. Nothing is ever written.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import pickle
import re
import zipfile
from typing import Any

import numpy as np

from gmn_jax.zoos.cnn.config import ZooError

# torch storage class name -> numpy dtype (the types torch.save writes for tensors).
_STORAGES = {'FloatStorage': np.float32, 'DoubleStorage': np.float64,
             'HalfStorage': np.float16, 'BFloat16Storage': None, 'LongStorage': np.int64,
             'IntStorage': np.int32, 'ShortStorage': np.int16, 'CharStorage': np.int8,
             'ByteStorage': np.uint8, 'BoolStorage': np.bool_}


@dataclasses.dataclass(frozen=True)
class _Storage:
  dtype: Any


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *unused) -> np.ndarray:
  """torch._utils._rebuild_tensor_v2 for numpy: a strided view of the storage, copied."""
  del unused  # requires_grad, backward hooks, metadata
  need = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else offset
  if need > len(storage):
    raise ValueError(f'a tensor of size {tuple(size)} at offset {offset} overruns its storage '
                     f'of {len(storage)} elements')
  item = storage.itemsize
  view = np.lib.stride_tricks.as_strided(storage[offset:], tuple(size),
                                         tuple(s * item for s in stride))
  return np.array(view)


class _SafeUnpickler(pickle.Unpickler):
  """Resolves only an OrderedDict, the tensor rebuild and storage types; storages come from
  the archive's raw files."""

  def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
    super().__init__(file)
    self._archive, self._prefix = archive, prefix

  def find_class(self, module: str, name: str):
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if (module, name) in (('torch._utils', '_rebuild_tensor_v2'),
                          ('torch._utils', '_rebuild_tensor')):
      return _rebuild_tensor
    if module == 'torch' and name in _STORAGES and _STORAGES[name] is not None:
      return _Storage(_STORAGES[name])
    raise pickle.UnpicklingError(f'refusing to load {module}.{name}: only tensors in a state '
                                 'dict are read (no arbitrary objects)')

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage'
            and isinstance(pid[1], _Storage)):
      raise pickle.UnpicklingError(f'unexpected persistent id {pid!r:.80}')
    _, storage, key, _, numel = pid
    raw = self._archive.read(f'{self._prefix}data/{key}')
    array = np.frombuffer(raw, dtype=np.dtype(storage.dtype).newbyteorder('<'))
    if len(array) < int(numel):
      raise ValueError(f'storage {key} holds {len(array)} elements, {numel} expected')
    return array


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """A PyTorch zip-format state dict (tensors only) as `{name: array}`, in file order.
  Host-side; never imports torch or unpickles anything but tensors.

  Raises:
    ValueError: not a zip-format torch file (e.g. the legacy pre-1.6 format, a truncated
      download), a storage missing or short, or an object other than a tensor inside.
  """
  path = pathlib.Path(path)
  try:
    with zipfile.ZipFile(path) as archive:
      pickles = [n for n in archive.namelist() if n.endswith('data.pkl')]
      if len(pickles) != 1:
        raise ValueError(f'expected one data.pkl in the archive, found {len(pickles)}')
      prefix = pickles[0][:-len('data.pkl')]
      with archive.open(pickles[0]) as file:
        state = _SafeUnpickler(file, archive, prefix).load()
  except (zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError, OSError,
          TypeError, ValueError) as err:
    raise ValueError(f'{path}: not a readable PyTorch state dict ({err}); re-download it '
                     '(torch.save zip format, tensors only)') from err
  if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
    raise ValueError(f'{path}: not a state dict of tensors')
  return dict(state)


def siren_params(state: dict[str, np.ndarray]) -> dict[str, Any]:
  """A SIREN state dict (weights `[out, in]` and biases `[out]`, 'weight'/'bias' in the keys,
  layer order) as `Siren` variables `{'params': {'Dense_i': {'kernel', 'bias'}}}`."""
  weights = [v for k, v in state.items() if 'weight' in k]
  biases = [v for k, v in state.items() if 'bias' in k]
  if not weights or len(weights) != len(biases) or any(
      w.ndim != 2 or b.shape != w.shape[:1] for w, b in zip(weights, biases)):
    raise ValueError('not a SIREN state dict: expected matching [out, in] weights and [out] '
                     f'biases, got {[(k, v.shape) for k, v in state.items()]}')
  return {'params': {f'Dense_{i}': {'kernel': w.T.astype(np.float32),
                                    'bias': b.astype(np.float32)}
                     for i, (w, b) in enumerate(zip(weights, biases))}}


@dataclasses.dataclass(frozen=True)
class PublishedInrs:
  """INRs read from a published data set.

  Attributes:
    params: `Siren` variables whose leaves have a leading axis `[n]`.
    labels: `[n]` class of each INR.
    paths: `[n]` the file each INR came from.
    hidden: the SIRENs' hidden widths (for `Siren(hidden=..., output_offset=0.5)`).
    refused: `(path, reason)` of files skipped with `skip_corrupt=True`.
  """

  params: Any
  labels: np.ndarray
  paths: tuple[str, ...]
  hidden: tuple[int, ...]
  refused: tuple[tuple[str, str], ...] = ()

  def __len__(self) -> int:
    return len(self.labels)


def load_dwsnets_inrs(split_json: str | os.PathLike, split: str = 'train', *,
                      root: str | os.PathLike | None = None, limit: int | None = None,
                      skip_corrupt: bool = False) -> PublishedInrs:
  """Reads one split of a DWSNets INR data set. Host-side.

  Args:
    split_json: the split file (`generate_data_splits.py`'s `mnist_splits.json`).
    split: 'train', 'val' or 'test'.
    root: relative paths in the JSON are read under it (default: the JSON's folder); DWSNets
      writes absolute paths, so a moved data set needs `root` and relative names.
    limit: read at most this many INRs (the first ones).
    skip_corrupt: skip unreadable files (listed in `refused`) instead of raising.

  Raises:
    ZooError: the split is missing, or (without `skip_corrupt`) files are unreadable or of
      another architecture; every such file is named.
  """
  split_json = pathlib.Path(split_json)
  data = json.loads(split_json.read_text())
  if split not in data or not {'path', 'label'} <= set(data[split]):
    raise ZooError(f'{split_json}: no split {split!r} with "path" and "label" (has '
                   f'{sorted(data)}); DWSNets writes train, val and test')
  root = pathlib.Path(root) if root is not None else split_json.parent
  paths = [root / p for p in data[split]['path'][:limit]]
  labels = [int(v) for v in data[split]['label'][:limit]]
  return _read_inrs(paths, labels, skip_corrupt, f'{split_json} split {split!r}')


# NFN's loader (`experiments/data_utils.py`, `SirenDataset`): files `<prefix>_*/net<i>.pth`,
# the label the digit of the first `_<d>s` in the path, and splits by index ranges.
_NFN_INDEX = re.compile(r'net(\d+)\.pth')
_NFN_LABEL = re.compile(r'_(\d)s')
NFN_SPLIT_POINTS = (45_000, 50_000)  # NFN's configs for MNIST, Fashion-MNIST and CIFAR-10


def load_nfn_sirens(data_path: str | os.PathLike, split: str = 'train', *,
                    prefix: str = 'randinit_smaller',
                    split_points: tuple[int, int] = NFN_SPLIT_POINTS,
                    limit: int | None = None, skip_corrupt: bool = False) -> PublishedInrs:
  """Reads one split of NFN's SIREN data sets (Zhou et al. 2023; `siren_mnist_wts/`,
  `siren_fashion_wts/`, `siren_cifar_wts/`) as NFN's own loader does. Host-side.

  Every `<data_path>/<prefix>_*/net<i>.pth` is INR number i, whose label is the digit of the
  first `_<digit>s` in its path; 'train' holds the indices below `split_points[0]`, 'val'
  those up to `split_points[1]`, 'test' the rest (NFN's `split_points` are 45,000 / 50,000).
  The files are SIREN state dicts like DWSNets' (same reader, no torch). NFN normalises
  images to [-1, 1] with no output offset: `siren.CONVENTIONS['nfn']`.

  Args:
    data_path: the folder the archive was extracted into (e.g. `siren_mnist_wts`).
    split: 'train', 'val', 'test' or 'all'.
    prefix: the INR set's file prefix (NFN's configs use 'randinit_smaller').
    split_points: the first validation and the first test index.
    limit: read at most this many INRs (the first ones of the split, by index).
    skip_corrupt: skip unreadable files (listed in `refused`) instead of raising.

  Raises:
    ZooError: no INR files, a path without an index or a label, an index twice, an unknown
      split, or (without `skip_corrupt`) unreadable files, each named.
  """
  data_path = pathlib.Path(data_path)
  found: dict[int, tuple[pathlib.Path, int]] = {}
  for path in sorted(data_path.glob(f'{prefix}_*/*.pth')):
    index, label = _NFN_INDEX.search(path.name), _NFN_LABEL.search(str(path))
    if index is None or label is None:
      raise ZooError(f'{path}: not an NFN SIREN file name (expected '
                     f'<prefix>_<label>s.../net<index>.pth)')
    if int(index.group(1)) in found:
      raise ZooError(f'{path}: INR index {index.group(1)} also in '
                     f'{found[int(index.group(1))][0]}')
    found[int(index.group(1))] = (path, int(label.group(1)))
  if not found:
    raise ZooError(f'{data_path}: no {prefix}_*/net<index>.pth files (extract NFN\'s '
                   'siren_*_wts.tar here, or pass its prefix)')
  val, test = split_points
  ranges = {'train': (0, val), 'val': (val, test), 'test': (test, None), 'all': (0, None)}
  if split not in ranges:
    raise ZooError(f'unknown split {split!r}; choose from {sorted(ranges)}')
  lo, hi = ranges[split]
  chosen = [i for i in sorted(found) if i >= lo and (hi is None or i < hi)][:limit]
  return _read_inrs([found[i][0] for i in chosen], [found[i][1] for i in chosen],
                    skip_corrupt, f'{data_path} split {split!r}')


def _read_inrs(paths: list[pathlib.Path], labels: list[int], skip_corrupt: bool,
               source: str) -> PublishedInrs:
  """Reads SIREN state dicts of one architecture, stacked; corrupt files named."""
  params, kept, refused = [], [], []
  for path, label in zip(paths, labels):
    try:
      p = siren_params(read_torch_state_dict(path))
      shapes = [a.shape for a in _leaves(p)]
      if params and shapes != [a.shape for a in _leaves(params[0])]:
        raise ValueError(f'another architecture than {params and _leaves(params[0])[0].shape} '
                         f'...: shapes {shapes}')
    except (ValueError, OSError) as err:
      refused.append((str(path), str(err)))
      continue
    params.append(p)
    kept.append((str(path), label))
  if refused and not skip_corrupt:
    names = '\n  '.join(f'{p}: {why}' for p, why in refused)
    raise ZooError(f'{len(refused)} of {len(paths)} INR files refused (pass skip_corrupt=True '
                   f'to read the others):\n  {names}')
  if not params:
    raise ZooError(f'{source}: no readable INR')
  import jax  # pylint: disable=g-import-not-at-top
  stacked = jax.tree.map(lambda *a: np.stack(a), *params)
  layers = stacked['params']
  hidden = tuple(layers[f'Dense_{i}']['bias'].shape[1] for i in range(len(layers) - 1))
  return PublishedInrs(stacked, np.asarray([l for _, l in kept], np.int32),
                       tuple(p for p, _ in kept), hidden, tuple(refused))


def _leaves(params: dict[str, Any]) -> list[np.ndarray]:
  return [a for layer in params['params'].values() for a in (layer['kernel'], layer['bias'])]

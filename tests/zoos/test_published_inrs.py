"""Published INR sets: DWSNets-style `.pth` state dicts (and NFN's folder layout of the same
files, read by NFN's own rules: index from the file name, label from the path, index splits) (written here in torch.save's zip format
without torch) round-trip into SIREN parameters that render what the state dict computes;
foreign objects are refused unexecuted; a corrupt file is named and the others still read."""

import collections
import io
import json
import pickle
import sys
import types
import zipfile

import jax
import numpy as np
import pytest

import gmn_jax
from gmn_jax.zoos.inr import published as published_inrs
from gmn_jax.zoos.inr import siren


class _StorageRef:
  """A tensor's storage: pickled by persistent id, its bytes in `data/<key>`."""

  def __init__(self, array, key):
    self.array, self.key = array, key


class _Tensor:
  """Pickles as torch does: `_rebuild_tensor_v2(storage, offset, size, stride, ...)`."""

  def __init__(self, array, key):
    self.array, self.storage = array, _StorageRef(array, key)

  def __reduce__(self):
    import torch._utils  # pylint: disable=g-import-not-at-top  (the stand-in module)
    stride = tuple(s // self.array.itemsize for s in self.array.strides)
    return (torch._utils._rebuild_tensor_v2,
            (self.storage, 0, self.array.shape, stride, False, collections.OrderedDict()))


@pytest.fixture
def fake_torch(monkeypatch):
  """Stand-in `torch` and `torch._utils` modules holding the globals torch.save names."""
  torch = types.ModuleType('torch')
  utils = types.ModuleType('torch._utils')

  def _rebuild_tensor_v2(*args):
    raise AssertionError('never called while writing')

  _rebuild_tensor_v2.__module__ = 'torch._utils'
  _rebuild_tensor_v2.__qualname__ = '_rebuild_tensor_v2'
  utils._rebuild_tensor_v2 = _rebuild_tensor_v2
  storage = type('FloatStorage', (), {'__module__': 'torch'})
  torch.FloatStorage, torch._utils = storage, utils
  monkeypatch.setitem(sys.modules, 'torch', torch)
  monkeypatch.setitem(sys.modules, 'torch._utils', utils)
  return torch


def _save(path, state, torch, extra=None):
  """torch.save's zip layout: `<stem>/data.pkl`, `<stem>/data/<key>`, `<stem>/version`."""
  tensors = {k: _Tensor(np.ascontiguousarray(v, np.float32), str(i))
             for i, (k, v) in enumerate(state.items())}
  ordered = collections.OrderedDict(tensors)
  ordered._metadata = collections.OrderedDict({'': {'version': 1}})
  if extra is not None:
    ordered['extra'] = extra
  buffer = io.BytesIO()
  pickler = pickle.Pickler(buffer, protocol=2)
  pickler.persistent_id = lambda obj: (
      ('storage', torch.FloatStorage, obj.key, 'cpu', obj.array.size)
      if isinstance(obj, _StorageRef) else None)
  pickler.dump(ordered)
  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr(f'{path.stem}/data.pkl', buffer.getvalue())
    archive.writestr(f'{path.stem}/byteorder', 'little')
    for t in tensors.values():
      archive.writestr(f'{path.stem}/data/{t.storage.key}', t.array.astype('<f4').tobytes())
    archive.writestr(f'{path.stem}/version', '3\n')


def _siren_state(seed):
  """A DWSNets SIREN's state dict: `seq.i.linear.weight [out, in]`, `...bias [out]`."""
  rng = np.random.default_rng(seed)
  sizes = [2, 8, 8, 1]
  state = {}
  for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
    state[f'seq.{i}.linear.weight'] = rng.normal(size=(fan_out, fan_in)) * 0.3
    state[f'seq.{i}.linear.bias'] = rng.normal(size=fan_out) * 0.1
  return state


def _data_set(tmp_path, torch, n=4):
  (tmp_path / 'inrs').mkdir()
  states = [_siren_state(i) for i in range(n)]
  for i, state in enumerate(states):
    _save(tmp_path / 'inrs' / f'{i}.pth', state, torch)
  split = {'train': {'path': [f'inrs/{i}.pth' for i in range(n)],
                     'label': [str(i % 10) for i in range(n)]}}
  (tmp_path / 'splits.json').write_text(json.dumps(split))
  return states


def test_round_trip_renders_what_the_state_dict_computes(tmp_path, fake_torch):
  states = _data_set(tmp_path, fake_torch)
  read = published_inrs.read_torch_state_dict(tmp_path / 'inrs' / '1.pth')
  assert list(read) == list(states[1])
  for key, value in states[1].items():
    np.testing.assert_array_equal(read[key], value.astype(np.float32))
  inrs = published_inrs.load_dwsnets_inrs(tmp_path / 'splits.json')
  assert len(inrs) == 4 and inrs.hidden == (8, 8) and inrs.labels.tolist() == [0, 1, 2, 3]
  # Rendered by the DWSNets-convention Siren, INR 2 is the state dict's own function.
  model = gmn_jax.Siren(hidden=inrs.hidden, output_offset=0.5)
  coords = siren.coordinates(5, 5)
  ours = model.apply(jax.tree.map(lambda a: a[2], inrs.params), coords)
  x = coords
  layers = [(states[2][f'seq.{i}.linear.weight'], states[2][f'seq.{i}.linear.bias'])
            for i in range(3)]
  for i, (w, b) in enumerate(layers):
    x = x @ w.T + b
    x = np.sin(30.0 * x) if i < 2 else x + 0.5
  np.testing.assert_allclose(np.asarray(ours), x, atol=1e-4)


def test_foreign_objects_are_refused_unexecuted(tmp_path, fake_torch):
  path = tmp_path / 'evil.pth'
  _save(path, _siren_state(0), fake_torch, extra=_Exploit())
  with pytest.raises(ValueError, match=r'evil.pth.*refusing to load (os|posix)\.system'):
    published_inrs.read_torch_state_dict(path)
  assert not (tmp_path / 'pwned').exists()


class _Exploit:

  def __reduce__(self):
    import os  # pylint: disable=g-import-not-at-top
    return (os.system, ('touch pwned',))


def test_corrupt_file_is_named_and_the_others_are_kept(tmp_path, fake_torch):
  _data_set(tmp_path, fake_torch)
  bad = tmp_path / 'inrs' / '2.pth'
  good_bytes = {p.name: p.read_bytes() for p in (tmp_path / 'inrs').iterdir()}
  bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) // 2])  # a truncated download
  with pytest.raises(gmn_jax.ZooError, match=r'1 of 4 INR files refused[\s\S]*2\.pth'):
    published_inrs.load_dwsnets_inrs(tmp_path / 'splits.json')
  inrs = published_inrs.load_dwsnets_inrs(tmp_path / 'splits.json', skip_corrupt=True)
  assert len(inrs) == 3 and inrs.labels.tolist() == [0, 1, 3]
  assert [p.endswith('2.pth') for p, _ in inrs.refused] == [True]
  for p in (tmp_path / 'inrs').iterdir():  # nothing written, nothing else touched
    if p.name != '2.pth':
      assert p.read_bytes() == good_bytes[p.name]
  with pytest.raises(gmn_jax.ZooError, match="no split 'test'"):
    published_inrs.load_dwsnets_inrs(tmp_path / 'splits.json', 'test')


def test_nfn_layout_reads_by_nfn_s_rules(tmp_path, fake_torch):
  """NFN's `SirenDataset`: `<prefix>_*/net<i>.pth`, label from `_<digit>s` in the path, the
  split by index ranges; files elsewhere or of another prefix are not read; a corrupt file is
  named and, with `skip_corrupt`, the others are still read."""
  labels = {0: 3, 1: 7, 2: 3, 3: 0, 4: 9, 5: 1}
  for i, label in labels.items():
    folder = tmp_path / f'randinit_smaller_{label}s'
    folder.mkdir(exist_ok=True)
    _save(folder / f'net{i}.pth', _siren_state(i), fake_torch)
  (tmp_path / 'other_5s').mkdir()
  _save(tmp_path / 'other_5s' / 'net9.pth', _siren_state(9), fake_torch)
  inrs = published_inrs.load_nfn_sirens(tmp_path, 'val', split_points=(2, 4))
  assert inrs.labels.tolist() == [3, 0] and [p.split('/')[-1] for p in inrs.paths] == [
      'net2.pth', 'net3.pth']
  np.testing.assert_array_equal(inrs.params['params']['Dense_0']['kernel'][1],
                                _siren_state(3)['seq.0.linear.weight'].T.astype(np.float32))
  assert len(published_inrs.load_nfn_sirens(tmp_path, 'all')) == 6
  test = published_inrs.load_nfn_sirens(tmp_path, 'test', split_points=(2, 4))
  assert test.labels.tolist() == [9, 1]
  bad = tmp_path / 'randinit_smaller_9s' / 'net4.pth'
  bad.write_bytes(bad.read_bytes()[:100])
  with pytest.raises(gmn_jax.ZooError, match=r'1 of 2 INR files refused[\s\S]*net4\.pth'):
    published_inrs.load_nfn_sirens(tmp_path, 'test', split_points=(2, 4))
  kept = published_inrs.load_nfn_sirens(tmp_path, 'test', split_points=(2, 4),
                                        skip_corrupt=True)
  assert kept.labels.tolist() == [1]
  with pytest.raises(gmn_jax.ZooError, match='no randinit_test_'):
    published_inrs.load_nfn_sirens(tmp_path, prefix='randinit_test')

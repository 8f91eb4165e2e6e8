"""`.ci/floors.py`: the pins CI's floor run installs come from pyproject.toml's floors alone."""

import importlib.util
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _floors_module():
  spec = importlib.util.spec_from_file_location('floors', ROOT / '.ci' / 'floors.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_core_dependency_is_pinned_at_its_floor():
  pins = _floors_module().floors()
  assert 'jax==0.8.1' in pins and 'flax==0.12.0' in pins
  assert len(pins) == len({p.split('==')[0] for p in pins}) >= 10


def test_a_requirement_without_a_floor_is_refused(tmp_path):
  pyproject = tmp_path / 'pyproject.toml'
  pyproject.write_text('[project]\ndependencies = ["jax>=0.8.1,<1", "numpy>=2.0", "tqdm"]\n')
  with pytest.raises(SystemExit, match="'tqdm'"):
    _floors_module().floors(pyproject)
  pyproject.write_text('[project]\ndependencies = ["jax>=0.8.1,<1", "numpy >= 2.0"]\n')
  assert _floors_module().floors(pyproject) == ['jax==0.8.1', 'numpy==2.0']

"""`gmn-convert` and `convert_checkpoint` on the inputs a new user gets wrong (issue 25).

Each case gives the documented result or an error naming the input and what to do, with the
exit code of `EXIT_CODES`, and leaves the output folders as they were. Checkpoints (one
``mlp`` per case, see `ckpt`): ``manager`` (a `CheckpointManager` directory, steps 0, 1, 2),
``params.msgpack``, ``nan.msgpack`` (the same with NaN bytes written over the last weights);
``broken`` (a copy of ``manager`` whose latest step lost its array data); ``bert`` and
``bert_edited`` (a tiny `FlaxBertModel` directory, and one whose config.json no longer
describes its weights).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import serialization

import gmn_jax
from gmn_jax import convert as convert_cli
from gmn_jax.io import exit_codes
from gmn_jax.io import graph_files
from tests.support import models

MLP = 'tests.support.models:MLP'
ROOT = pathlib.Path(__file__).parents[2]


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory) -> pathlib.Path:
  root = tmp_path_factory.mktemp('ckpt')
  variables = models.get('mlp').variables
  with ocp.CheckpointManager(root / 'manager') as manager:
    for k in range(3):
      manager.save(k, args=ocp.args.StandardSave(variables))
    manager.wait_until_finished()
  shutil.copytree(root / 'manager', root / 'broken')
  for f in (root / 'broken' / '2' / 'default' / 'd').iterdir():  # the arrays' data files
    f.write_bytes(b'\0' * 8)
  data = serialization.to_bytes(variables['params'])
  (root / 'params.msgpack').write_bytes(data)
  (root / 'nan.msgpack').write_bytes(data[:-8] + b'\xff' * 8)  # float32 0xffffffff is NaN
  return root


def _run(argv, capsys) -> tuple[int, str]:
  code = convert_cli.main([str(a) for a in argv])
  return code, capsys.readouterr().err


def _listing(folder: pathlib.Path) -> list[str]:
  return sorted(str(p.relative_to(folder)) for p in folder.rglob('*'))


# ---- 1: relative paths ----------------------------------------------------------------------


def test_relative_manager_directory(ckpt, tmp_path, monkeypatch, capsys):
  """orbax wants absolute paths; a relative one (the docs' `ckpt/`) is resolved for it."""
  shutil.copytree(ckpt / 'manager', tmp_path / 'ckpt')
  monkeypatch.chdir(tmp_path)
  conv = gmn_jax.convert_checkpoint('ckpt', MLP, inputs=[(1, 3)])
  case = models.get('mlp')
  want = gmn_jax.trace(case.model, case.variables, *case.example_args).encode(case.variables)
  assert conv.steps == [2]
  np.testing.assert_array_equal(conv.graphs[0].edges['weight'], want.edges['weight'])
  assert gmn_jax.convert_checkpoint('ckpt/1/default', MLP, inputs=[(1, 3)]).steps == [None]
  code, err = _run(['ckpt/', '--model', MLP, '--input-shape', '1,3', '-o', 'g.npz', '-q'],
                   capsys)
  assert code == 0, err
  assert len(gmn_jax.load_graphs('g.npz').n_node) == 1


# ---- 3: outputs that cannot be written: checked before converting, nothing written ---------


@pytest.mark.parametrize('args, code, message', [
    (['-o', 'missing/g.npz'], 9, '-o missing/g.npz: the folder missing does not exist; create it'),
    (['-o', 'a_file/g.npz'], 9, 'the folder a_file is not a folder'),
    (['-o', 'a_folder.npz'], 9, 'a_folder.npz is a folder; name a file in it'),
    (['--draw', 'graph.xyz'], 2, '.xyz is not a file type matplotlib writes; use one of'),
    (['--draw', 'graph'], 2, '--draw graph: has no file extension'),
    (['--draw', 'missing/graph.png'], 9, 'the folder missing does not exist'),
])
def test_outputs_are_checked_before_converting(ckpt, tmp_path, monkeypatch, capsys, args, code,
                                               message):
  monkeypatch.chdir(tmp_path)
  (tmp_path / 'a_file').write_text('x')
  (tmp_path / 'a_folder.npz').mkdir()
  before = _listing(tmp_path)
  got, err = _run([ckpt / 'params.msgpack', '--model', MLP, '--input-shape', '1,3', *args],
                  capsys)
  assert got == code and err.startswith('gmn-convert: error: ') and message in err, err
  assert _listing(tmp_path) == before


def test_a_failed_write_leaves_nothing(ckpt, tmp_path, monkeypatch, capsys):
  """The disk can still refuse after the checks (full, quota): exit 9, no .npz, no drawing,
  no temporary file."""
  def full(path, *args, **kwargs):
    raise OSError(28, 'No space left on device', str(path))

  monkeypatch.setattr(graph_files, 'save_graphs', full)
  code, err = _run([ckpt / 'params.msgpack', '--model', MLP, '--input-shape', '1,3', '-o',
                    tmp_path / 'g.npz', '--draw', tmp_path / 'g.png'], capsys)
  assert code == 9 and 'No space left on device; nothing was written' in err, err
  assert _listing(tmp_path) == []


@pytest.mark.skipif(os.name != 'posix' or os.geteuid() == 0,
                    reason='permissions do not bind root')
def test_a_read_only_folder_is_refused(ckpt, tmp_path, capsys):
  folder = tmp_path / 'read_only'
  folder.mkdir()
  folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
  try:
    code, err = _run([ckpt / 'params.msgpack', '--model', MLP, '--input-shape', '1,3', '-o',
                      folder / 'g.npz'], capsys)
  finally:
    folder.chmod(stat.S_IRWXU)
  assert code == 9 and 'no permission to write into' in err, err
  assert _listing(folder) == []


def test_files_get_the_umask_mode(ckpt, tmp_path, capsys):
  """mkstemp makes 0600 files; the .npz and the drawing get what the umask gives (0644)."""
  old = os.umask(0o022)
  try:
    code, err = _run([ckpt / 'params.msgpack', '--model', MLP, '--input-shape', '1,3', '-o',
                      tmp_path / 'g.npz', '--draw', tmp_path / 'g.png', '-q'], capsys)
    assert code == 0, err
    os.umask(0o027)
    case = models.get('mlp')
    pg = gmn_jax.trace(case.model, case.variables, *case.example_args)
    other = gmn_jax.save_graphs(tmp_path / 'h.npz', pg.encode(case.variables))
  finally:
    os.umask(old)
  assert stat.S_IMODE((tmp_path / 'g.npz').stat().st_mode) == 0o644
  assert stat.S_IMODE((tmp_path / 'g.png').stat().st_mode) == 0o644
  assert stat.S_IMODE(other.stat().st_mode) == 0o640
  assert _listing(tmp_path) == ['g.npz', 'g.png', 'h.npz']


# ---- 5 and 8: corrupt inputs and the hints that go with them ---------------------------------


def test_nan_bytes_in_a_msgpack_file_are_a_corrupt_file(ckpt, tmp_path, capsys):
  for extra in (['--model', MLP, '--input-shape', '1,3'], []):  # traced, and a plain chain
    code, err = _run([ckpt / 'nan.msgpack', *extra, '-o', tmp_path / 'g.npz'], capsys)
    assert code == exit_codes.NOT_CHECKPOINT == 4, err
    assert 'nan.msgpack holds NaN or infinite values in 1 of its 6 float arrays' in err, err
    assert "(Dense_2/kernel)" in err and 'corrupt file' in err
  assert _listing(tmp_path) == []


def test_unreadable_latest_step_suggests_an_earlier_one(ckpt, tmp_path, capsys):
  code, err = _run([ckpt / 'broken', '--model', MLP, '--input-shape', '1,3', '-o',
                    tmp_path / 'g.npz'], capsys)
  assert code == 4, err
  assert 'The latest step (2) cannot be read' in err and 'pass --step 1' in err, err
  code, err = _run([ckpt / 'broken', '--step', '1', '--model', MLP, '--input-shape', '1,3',
                    '-o', tmp_path / 'g.npz', '-q'], capsys)
  assert code == 0, err
  code, err = _run([ckpt / 'broken', '--all-steps', '--model', MLP, '--input-shape', '1,3',
                    '-o', tmp_path / 'h.npz'], capsys)
  assert code == 4 and '--step' not in err.split('cannot')[-1], err  # asked for every step


def test_transformers_config_that_does_not_fit_its_weights(tmp_path, capsys):
  """The fix is the directory, not --model-args (which this mode refuses)."""
  pytest.importorskip('transformers')
  from transformers import BertConfig, FlaxBertModel  # pylint: disable=g-import-not-at-top
  config = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=16, max_position_embeddings=16)
  FlaxBertModel(config, seed=0).save_pretrained(tmp_path / 'bert')
  edited = json.loads((tmp_path / 'bert' / 'config.json').read_text())
  edited['intermediate_size'] = 12
  (tmp_path / 'bert' / 'config.json').write_text(json.dumps(edited))
  code, err = _run([tmp_path / 'bert', '-o', tmp_path / 'g.npz'], capsys)
  assert code == 7, err
  assert 'config.json does not describe these weights' in err and '--model-args' not in err
  assert not (tmp_path / 'g.npz').exists()


# ---- 8: --help answers without importing jax -------------------------------------------------


def test_help_and_exit_codes_do_not_import_jax():
  """`import gmn_jax` and the command line's parsing stay light: jax loads on first use."""
  code = ('import sys, gmn_jax, gmn_jax.io, gmn_jax.io.cli, gmn_jax.convert; '
          'cli = gmn_jax.io.cli; cli.parser().format_help(); '
          'print(sorted(m for m in ("jax", "flax", "optax", "numpy") if m in sys.modules)); '
          'gmn_jax.trace; print("jax" in sys.modules)')
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert result.returncode == 0, result.stderr
  assert result.stdout.split('\n')[:2] == ['[]', 'True'], result.stdout  # negative control


def test_every_public_name_resolves():
  for name in gmn_jax.__all__:
    assert getattr(gmn_jax, name) is not None, name
  assert set(gmn_jax.__all__) <= set(dir(gmn_jax))
  with pytest.raises(AttributeError, match='no_such_name'):
    gmn_jax.no_such_name  # pylint: disable=pointless-statement


def test_help_lists_the_output_exit_code(capsys):
  with pytest.raises(SystemExit):
    convert_cli.main(['--help'])
  text = capsys.readouterr().out
  assert '\n  9  an output cannot be written' in text, text

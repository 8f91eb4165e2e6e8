"""`gmn-convert` on orbax checkpoints that the tests write, and the graph file it produces.

Checkpoints (written once per module, see `checkpoints`), each a corner case of the layouts:

- ``manager``: a `CheckpointManager` with steps 0, 1, 2 of the linen ``cnn_bn`` model
  (`{'params', 'batch_stats'}`, BatchNorm running statistics included), each step's weights
  different: a training trajectory.
- ``train_state``: a flax `TrainState` of ``mlp`` (params next to Adam moments and a step
  counter), one item written by `StandardCheckpointer`.
- ``nnx_state``: `nnx.split` state of ``cnn_nnx`` (leaves wrapped as `{'value': ...}`).
- ``nnx_pure``: `nnx.state(...).to_pure_dict()` of ``mlp_nnx`` (no wrappers): a plain chain.
- ``params_only``: the bare params collection of ``mlp`` (no `'params'` key).
- ``no_params``: an item holding only an integer step counter.
- ``not_a_checkpoint``: a folder with a text file.
- ``train_state.msgpack``, ``params_only.msgpack``: the same two pytrees as
  `flax.serialization.to_bytes` files; ``truncated.msgpack`` (half of one) and ``lfs.msgpack``
  (a git-lfs pointer) are corrupt.
- ``bert``: a transformers model directory (`save_pretrained` of a tiny random `FlaxBertModel`:
  `config.json` + `flax_model.msgpack`), ``bert_sharded`` (several msgpack shards and their
  index), ``bert_safetensors`` (Flax `model.safetensors`); ``config_only`` (no weights),
  ``pytorch_only`` (`pytorch_model.bin` but no Flax weights) and ``bert_truncated`` (a cut
  `flax_model.msgpack`) are refused.

The command is run as a subprocess (what a user runs) for the main paths, and in-process via
`gmn_jax.convert.main` for the error codes (each subprocess costs a JAX start-up).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jraph
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx, serialization
from flax.training import train_state

import gmn_jax
from tests.support import models
from gmn_jax import convert as convert_cli
from gmn_jax.io import graph_files as graph_io
from gmn_jax.io import transformers_dirs

TESTS = pathlib.Path(__file__).parents[1] / 'support'  # holds models.py, for --model models:...


def _scaled(tree, factor):
  return jax.tree_util.tree_map(lambda a: np.asarray(a) * np.float32(factor), tree)


def _trajectory():
  """The ``cnn_bn`` variables at steps 0, 1, 2 (params scaled, batch_stats shifted)."""
  case = models.get('cnn_bn')
  steps = []
  for k in range(3):
    v = dict(case.variables)
    v['params'] = _scaled(v['params'], 1.0 + 0.1 * k)
    v['batch_stats'] = jax.tree_util.tree_map(lambda a, k=k: np.asarray(a) + np.float32(k),
                                              v['batch_stats'])
    steps.append(v)
  return steps


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
  root = tmp_path_factory.mktemp('checkpoints')
  with ocp.CheckpointManager(root / 'manager') as manager:
    for k, v in enumerate(_trajectory()):
      manager.save(k, args=ocp.args.StandardSave(v))
    manager.wait_until_finished()
  checkpointer = ocp.StandardCheckpointer()
  mlp = models.get('mlp')
  state = train_state.TrainState.create(apply_fn=mlp.model.apply, params=mlp.variables['params'],
                                        tx=optax.adam(1e-3))
  checkpointer.save(root / 'train_state', state)
  checkpointer.save(root / 'params_only', mlp.variables['params'])
  checkpointer.save(root / 'nnx_state', nnx.split(models.get('cnn_nnx').model)[1])
  checkpointer.save(root / 'nnx_pure', nnx.to_pure_dict(nnx.state(models.get('mlp_nnx').model)))
  checkpointer.save(root / 'no_params', {'step': np.array(3, np.int64)})
  checkpointer.wait_until_finished()
  (root / 'not_a_checkpoint').mkdir()
  (root / 'not_a_checkpoint' / 'notes.txt').write_text('not a checkpoint')
  (root / 'train_state.msgpack').write_bytes(serialization.to_bytes(state))
  (root / 'params_only.msgpack').write_bytes(serialization.to_bytes(mlp.variables['params']))
  data = (root / 'train_state.msgpack').read_bytes()
  (root / 'truncated.msgpack').write_bytes(data[:len(data) // 2])
  (root / 'lfs.msgpack').write_text('version https://git-lfs.github.com/spec/v1\noid sha256:0\n')
  _transformers_dirs(root)
  return root


def _tiny_bert():
  from transformers import BertConfig, FlaxBertModel  # pylint: disable=g-import-not-at-top
  config = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=16, max_position_embeddings=16)
  return FlaxBertModel(config, seed=0)


def _transformers_dirs(root):
  bert = _tiny_bert()
  bert.save_pretrained(root / 'bert')
  bert.save_pretrained(root / 'bert_sharded', max_shard_size='1KB')
  bert.save_pretrained(root / 'bert_safetensors', safe_serialization=True)
  for name in ('config_only', 'pytorch_only', 'bert_truncated'):
    (root / name).mkdir()
    shutil.copy(root / 'bert' / 'config.json', root / name)
  (root / 'pytorch_only' / 'pytorch_model.bin').write_bytes(b'torch')
  data = (root / 'bert' / 'flax_model.msgpack').read_bytes()
  (root / 'bert_truncated' / 'flax_model.msgpack').write_bytes(data[:len(data) // 3])


def _cli(*args, cwd=TESTS, command=None):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  command = command or [sys.executable, '-m', 'gmn_jax.convert']
  return subprocess.run([*command, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=120, check=False)


def _assert_same_graph(got: jraph.GraphsTuple, want: jraph.GraphsTuple):
  got, want = jax.device_get(got), jax.device_get(want)
  for field in ('senders', 'receivers', 'n_node', 'n_edge'):
    np.testing.assert_array_equal(np.asarray(getattr(got, field)).ravel(),
                                  np.asarray(getattr(want, field)).ravel(), err_msg=field)
  for part in ('nodes', 'edges'):
    a, b = getattr(got, part), getattr(want, part)
    assert sorted(a) == sorted(b)
    for key in a:
      np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]),
                                    err_msg=f'{part}/{key}')


# ---- the command, as a subprocess -----------------------------------------------------------


def test_linen_trajectory_with_model_all_steps_and_drawing(checkpoints, tmp_path):
  out, png = tmp_path / 'trajectory.npz', tmp_path / 'trajectory.png'
  result = _cli(checkpoints / 'manager', '--model', 'models:CNNBatchNorm', '--input-shape',
                '1,6,6,2', '--all-steps', '-o', out, '--draw', png)
  assert result.returncode == 0, result.stderr
  assert 'parameters covered: 271 of 271' in result.stdout
  assert 'weight 36' in result.stdout and 'layers: 4' in result.stdout
  graphs, info = gmn_jax.load_graphs(out, with_info=True)
  assert info['steps'] == [0, 1, 2] and info['n_graph'] == 3
  assert info['schema_version'] == graph_io.SCHEMA_VERSION
  assert info['metadata']['model'] == 'models:CNNBatchNorm'
  case = models.get('cnn_bn')
  pg = gmn_jax.trace(case.model, case.variables, *case.example_args)
  assert [g['name'] for g in info['groups']] == [g.name for g in pg.architecture.groups]
  for got, variables in zip(jraph.unbatch_np(graphs), _trajectory()):
    _assert_same_graph(got, pg.encode(variables))
  assert png.stat().st_size > 10_000


def test_nnx_state_with_model(checkpoints, tmp_path):
  out = tmp_path / 'nnx.npz'
  result = _cli(checkpoints / 'nnx_state', '--model', 'models:CNNNNX', '--input-shape',
                '1,6,6,2', '-o', out)
  assert result.returncode == 0, result.stderr
  module = models.get('cnn_nnx').model
  pg = gmn_jax.trace(module, *models.get('cnn_nnx').example_args)
  _assert_same_graph(gmn_jax.load_graphs(out), pg.encode(module))


def test_plain_chain_without_model_console_script(checkpoints, tmp_path):
  """nnx pure-dict state of a Dense chain, no model code: `from_params` gives the graph."""
  script = shutil.which('gmn-convert')
  if script is None:
    pytest.skip('gmn-convert is not installed (pip install -e .)')
  result = _cli(checkpoints / 'nnx_pure', cwd=tmp_path, command=[script])
  assert result.returncode == 0, result.stderr
  assert 'model: from_params' in result.stdout
  module = models.get('mlp_nnx').model
  params = nnx.to_pure_dict(nnx.state(module))
  want = gmn_jax.from_params(params).encode(params)
  _assert_same_graph(gmn_jax.load_graphs(tmp_path / 'nnx_pure.graph.npz'), want)


@pytest.mark.slow  # a fresh interpreter (~30 s loaded); the in-process CLI tests stay fast
def test_mismatch_exit_code_and_message_from_a_subprocess(checkpoints, tmp_path):
  result = _cli(checkpoints / 'train_state', '--model', 'models:MLP', '--model-args',
                '{"features": [5, 6, 2]}', '--input-shape', '1,3', '-o', tmp_path / 'x.npz')
  assert result.returncode == 7
  assert 'Dense_1/kernel: checkpoint has shape (5, 5), the model expects (5, 6)' in result.stderr
  assert not (tmp_path / 'x.npz').exists()


# ---- the same code in-process: layouts, API and every exit code -----------------------------


def test_train_state_and_bare_params_give_the_mlp_graph(checkpoints):
  case = models.get('mlp')
  want = gmn_jax.trace(case.model, case.variables, *case.example_args).encode(case.variables)
  for item in ('train_state', 'params_only', 'train_state.msgpack'):
    conv = gmn_jax.convert_checkpoint(checkpoints / item, models.MLP, inputs=[(1, 3)])
    _assert_same_graph(conv.graphs[0], want)
  assert conv.prefix == '' and conv.items == [checkpoints / 'train_state.msgpack']
  conv = gmn_jax.convert_checkpoint(checkpoints / 'train_state', 'tests.support.models:MLP',
                                   inputs=[(1, 3)])
  assert 'optimizer state' in conv.report()
  # Without the model the chain is found under 'params', next to the optimizer moments.
  for item in ('train_state', 'train_state.msgpack'):
    chain = gmn_jax.convert_checkpoint(checkpoints / item)
    _assert_same_graph(chain.graphs[0], want)


def test_transformers_directory(checkpoints):
  """`config.json` names FlaxBertModel; its weights land in their slots bit for bit."""
  conv = gmn_jax.convert_checkpoint(checkpoints / 'bert')
  assert conv.model == 'FlaxBertModel' and conv.items == [checkpoints / 'bert' /
                                                          'flax_model.msgpack']
  params = _tiny_bert().params
  assert conv.pg.n_params == conv.n_float == sum(np.size(l) for l in jax.tree.leaves(params))
  assert 'parameters covered: ' in conv.report() and '(all)' in conv.report()
  decoded = conv.pg.decode(conv.graphs[0])['params']
  assert jax.tree.structure(decoded) == jax.tree.structure(params)
  jax.tree.map(np.testing.assert_array_equal, decoded, params)


def test_msgpack_file_from_the_command_line(checkpoints, tmp_path, monkeypatch):
  monkeypatch.chdir(TESTS)
  out = tmp_path / 'mlp.npz'
  assert convert_cli.main([str(checkpoints / 'params_only.msgpack'), '--model', 'models:MLP',
                           '--input-shape', '1,3', '-o', str(out), '-q']) == 0
  case = models.get('mlp')
  want = gmn_jax.trace(case.model, case.variables, *case.example_args).encode(case.variables)
  graphs, info = gmn_jax.load_graphs(out, with_info=True)
  _assert_same_graph(graphs, want)
  assert info['metadata']['items'] == [str(checkpoints / 'params_only.msgpack')]


def test_transformers_weights_sharded_and_safetensors(checkpoints):
  params = _tiny_bert().params
  for name, n_files in (('bert_sharded', None), ('bert_safetensors', 1)):
    tree, files = transformers_dirs.read_weights(checkpoints / name)
    assert len(files) > 1 if n_files is None else len(files) == n_files
    assert jax.tree.structure(tree) == jax.tree.structure(params), name
    jax.tree.map(np.testing.assert_array_equal, tree, params)


def test_step_selection(checkpoints):
  trajectory = _trajectory()
  case = models.get('cnn_bn')
  pg = gmn_jax.trace(case.model, case.variables, *case.example_args)
  latest = gmn_jax.convert_checkpoint(checkpoints / 'manager', case.model,
                                      inputs=case.example_args)
  assert latest.steps == [2]
  _assert_same_graph(latest.graphs[0], pg.encode(trajectory[2]))
  first = gmn_jax.convert_checkpoint(checkpoints / 'manager' / '0', case.model,
                                     inputs=case.example_args)
  _assert_same_graph(first.graphs[0], pg.encode(trajectory[0]))


@pytest.mark.parametrize('args, code, message', [
    (['missing'], 3, 'does not exist'),
    (['not_a_checkpoint'], 4, 'is not an orbax checkpoint'),
    (['not_a_checkpoint/notes.txt'], 4, 'notes.txt is not a readable msgpack checkpoint'),
    (['no_params'], 5, 'holds no floating-point arrays'),
    (['params_only', '--model', 'no_such_module:MLP', '--input-shape', '1,3'], 6,
     "cannot import module 'no_such_module'"),
    (['params_only', '--model', 'models:NoSuchModel', '--input-shape', '1,3'], 6,
     "has no 'NoSuchModel'"),
    (['params_only', '--model', 'models:MLP', '--input-shape', '1,4'], 7,
     'Dense_0/kernel: checkpoint has shape (3, 5), the model expects (4, 5)'),
    (['manager', '--model', 'models:MLP', '--input-shape', '1,3'], 7,
     'missing from the checkpoint'),
    (['manager'], 8, "also holds ['BatchNorm_0', 'BatchNorm_1']"),
    (['manager', '--model', 'models:CNNBatchNorm'], 2, '--input-shape'),
    (['manager', '--step', '7'], 2, 'has no step 7; its steps are [0, 1, 2]'),
    (['params_only', '--step', '1'], 2, 'not a CheckpointManager directory'),
    (['truncated.msgpack'], 4, 'truncated.msgpack is not a readable msgpack checkpoint'),
    (['lfs.msgpack'], 4, 'git lfs pull'),
    (['params_only.msgpack', '--step', '1'], 2, 'single msgpack file'),
    (['bert', '--model', 'models:MLP'], 2, 'the model comes from its config.json'),
    (['config_only'], 4, 'has config.json but no flax_model.msgpack'),
    (['pytorch_only'], 4, "holds ['pytorch_model.bin'] but no Flax weights"),
    (['bert_truncated'], 4, 'flax_model.msgpack is not a readable msgpack checkpoint'),
])
def test_exit_codes(checkpoints, tmp_path, capsys, monkeypatch, args, code, message):
  monkeypatch.chdir(TESTS)
  argv = [str(checkpoints / args[0]), *args[1:], '-o', str(tmp_path / 'g.npz')]
  assert convert_cli.main(argv) == code
  err = capsys.readouterr().err
  assert err.startswith('gmn-convert: error: ') and message in err, err
  assert not (tmp_path / 'g.npz').exists()


def test_help_documents_exit_codes(capsys):
  with pytest.raises(SystemExit) as exit_info:
    convert_cli.main(['--help'])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  for code in range(2, 9):
    assert f'\n  {code}  ' in text


# ---- graph files ----------------------------------------------------------------------------


def test_graph_file_round_trip_mixed_architectures(tmp_path):
  """Two architectures with different K and P, one of them stacked by vmap, and globals."""
  cnn = models.get('cnn_bn')
  mlp = models.get('mlp')
  pg_cnn = gmn_jax.trace(cnn.model, cnn.variables, *cnn.example_args)
  pg_mlp = gmn_jax.trace(mlp.model, mlp.variables, *mlp.example_args)
  stacked = jax.tree_util.tree_map(lambda *a: np.stack(a), mlp.variables, _scaled(
      mlp.variables, 2.0))
  graphs = [pg_cnn.encode(cnn.variables), jax.vmap(pg_mlp.encode)(stacked)]
  path = gmn_jax.save_graphs(tmp_path / 'mixed', graphs, metadata={'note': 'x'})
  assert path.suffix == '.npz'
  loaded, info = gmn_jax.load_graphs(path, with_info=True)
  assert info['n_graph'] == 3 and info['steps'] is None and info['metadata'] == {'note': 'x'}
  parts = gmn_jax.unbatch(loaded)
  assert len(parts) == 3
  _assert_same_graph(parts[0], pg_cnn.encode(cnn.variables))
  _assert_same_graph(parts[2], pg_mlp.encode(_scaled(mlp.variables, 2.0)))
  decoded = pg_mlp.decode(parts[1])
  jax.tree_util.tree_map(np.testing.assert_array_equal, decoded, mlp.variables)

  one = pg_mlp.encode(mlp.variables)._replace(globals={'accuracy': np.array([[0.5]])})
  gmn_jax.save_graphs(tmp_path / 'globals.npz', one, pg=pg_mlp, steps=[7])
  loaded, info = gmn_jax.load_graphs(tmp_path / 'globals.npz', with_info=True)
  np.testing.assert_array_equal(loaded.globals['accuracy'], [[0.5]])
  assert info['steps'] == [7] and info['ops'] == pg_mlp.ops


def test_graph_file_errors(tmp_path):
  with pytest.raises(FileNotFoundError):
    gmn_jax.load_graphs(tmp_path / 'nothing.npz')
  np.savez(tmp_path / 'other.npz', x=np.zeros(3))
  with pytest.raises(ValueError, match='not a graph file'):
    gmn_jax.load_graphs(tmp_path / 'other.npz')
  mlp = models.get('mlp')
  pg = gmn_jax.trace(mlp.model, mlp.variables, *mlp.example_args)
  path = gmn_jax.save_graphs(tmp_path / 'g.npz', pg.encode(mlp.variables))
  with np.load(path) as data:
    arrays = dict(data)
  arrays['schema_version'] = np.array(graph_io.SCHEMA_VERSION + 1)
  np.savez(path, **arrays)
  with pytest.raises(ValueError, match='schema version'):
    gmn_jax.load_graphs(path)
  with pytest.raises(ValueError, match='2 steps for 1 graphs'):
    gmn_jax.save_graphs(tmp_path / 'h.npz', pg.encode(mlp.variables), steps=[1, 2])

"""End to end: `python -m experiments.generalization --tiny` trains on held-out-split zoo
models and its GMN beats a constant predictor; predictions.csv re-scores every method; a
rerun reuses the zoo and checkpoints; diverged zoo members are dropped. The same zoo, exported
in the Small CNN Zoo format without its padding, with an NFN-style index file, runs under the
published protocol: the split and filter are NFN's loader's, the test rows are its."""

import csv
import gzip
import io
import json
import random
import shutil

import numpy as np
import pytest

import gmn_jax
from experiments import generalization as experiment
from gmn_jax.tasks.generalization import published_protocol
from gmn_jax.tasks.generalization import encode_zoo
from gmn_jax.training import metrics
from gmn_jax.zoos.cnn.zoo import load_zoo


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp('generalization')
  experiment.main(['--tiny', '--workdir', str(path)])
  return path


@pytest.mark.slow  # the end-to-end run
def test_gmn_beats_a_constant_predictor_on_held_out_models(workdir):
  results = json.loads((workdir / 'results.json').read_text())
  gmn, constant = results['methods']['gmn']['test'], results['constant_predictor']
  assert results['rows']['test'] > 0 and results['rows']['train'] > 0
  assert gmn['kendall_tau'] > 0.2
  assert gmn['r2'] > constant['r2'] and gmn['mse'] < constant['mse']
  assert results['methods']['statnn_gbm']['test']['mse'] < constant['mse']
  for name in ('results.md', 'predictions.png', 'learning_curves.png'):
    assert (workdir / name).stat().st_size > 0


@pytest.mark.slow  # the end-to-end run
def test_rerun_reuses_zoo_and_checkpoints(workdir, tmp_path, capsys):
  """Started again (on a copy, GMN only: its checkpoints are what is reused), the run
  trains nothing and reports the same held-out numbers."""
  before = json.loads((workdir / 'results.json').read_text())
  copy = tmp_path / 'run'
  shutil.copytree(workdir, copy)
  log = copy / 'runs' / 'gmn' / 'log.jsonl'
  written = log.stat().st_mtime_ns  # copytree keeps it
  experiment.main(['--tiny', '--methods', 'gmn', '--workdir', str(copy)])
  after = json.loads((copy / 'results.json').read_text())
  assert after['methods']['gmn']['test'] == before['methods']['gmn']['test']
  assert log.stat().st_mtime_ns == written  # no epoch trained again
  assert after['total_seconds'] < before['total_seconds']
  assert 'GMN' in capsys.readouterr().out


@pytest.mark.slow  # the end-to-end run
def test_diverged_rows_are_dropped(workdir):
  """A row whose weights blew up (finite but huge) or went NaN is dropped before encoding."""
  zoo = load_zoo(workdir / 'zoo')
  width = zoo.widths[0]
  kernel = zoo.params[width]['params']['Conv_0']['kernel']
  kernel[3] *= 1e30
  kernel[5] = np.nan
  graphs, table, _, dropped = encode_zoo(zoo, max_abs_param=1e3)
  assert dropped == 2 and len(graphs) == len(kernel) - 2
  kept = set(zip(table['member'].tolist(), table['snapshot'].tolist()))
  metrics = zoo.metrics[width]
  for row in range(len(kernel)):
    pair = (int(metrics['member'][row]), int(metrics['snapshot'][row]))
    assert (pair in kept) == (row not in (3, 5))


def _read_csv(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


@pytest.mark.slow  # the end-to-end run
def test_predictions_csv_rescores_every_method(workdir):
  results = json.loads((workdir / 'results.json').read_text())
  lines = _read_csv(workdir / 'predictions.csv')
  assert {'method', 'index', 'row', 'member', 'snapshot', 'step', 'optimizer', 'target',
          'prediction'} <= set(lines[0])
  for name, result in results['methods'].items():
    mine = [line for line in lines if line['method'] == name]
    assert len(mine) == result['n_test'] > 0
    target = np.asarray([float(line['target']) for line in mine])
    np.testing.assert_array_equal(target, [float(line['test_accuracy']) for line in mine])
    tau = metrics.kendall_tau(target, np.asarray([float(line['prediction']) for line in mine]))
    assert tau == pytest.approx(result['test']['kendall_tau'], abs=1e-12), name


def test_nfn_split_by_hand():
  """NFN's loader on 10 rows, worked by hand: rows 3 and 6 are not final; the kept order is
  5 2 8 0 7 9 1 4; test is its second half; random.Random(0) shuffles positions [0, 1, 2, 3]
  to [2, 0, 1, 3], of which int(0.8 * 4) = 3 train."""
  final = np.ones(10, bool)
  final[[3, 6]] = False
  split = published_protocol.nfn_split(np.asarray([5, 2, 8, 0, 7, 3, 9, 1, 6, 4]), final)
  assert {k: v.tolist() for k, v in split.items()} == {
      'train': [8, 5, 2], 'val': [0], 'test': [7, 9, 1, 4]}
  # The published sizes: 30,000 runs x 9 checkpoints -> 12,000 / 3,000 / 15,000 networks.
  final = np.tile(np.arange(9) == 8, 30000)
  sizes = published_protocol.nfn_split(np.random.default_rng(0).permutation(270000), final)
  assert {k: len(v) for k, v in sizes.items()} == {'train': 12000, 'val': 3000, 'test': 15000}


@pytest.mark.parametrize('content, message', [
    ('3\n1\n3\n', r'rows \[3\] more than once'),
    ('0\n99\n', r'rows \[99\] outside'),
    ('0\nseven\n', 'unreadable'),
])
def test_split_file_errors(tmp_path, content, message):
  path = tmp_path / 'split.csv'
  path.write_text(content)
  with pytest.raises(published_protocol.SplitFileError, match=message):
    published_protocol.read_split_file(path, 10)
  bad = tmp_path / 'split.json'
  bad.write_text(json.dumps({'train': [0, 1], 'val': [1], 'test': [2]}))
  with pytest.raises(published_protocol.SplitFileError, match='the parts overlap'):
    published_protocol.read_split_file(bad, 10)


def _export_without_padding(zoo, directory):
  """The zoo in the Small CNN Zoo format as the published files are: no padding or input
  shape column, `step` counting epochs; member 0's last checkpoint is at step 5, not 6."""
  gmn_jax.write_small_cnn_zoo(zoo, directory)
  path = directory / 'metrics.csv.gz'
  lines = list(csv.DictReader(io.StringIO(gzip.decompress(path.read_bytes()).decode())))
  columns = [c for c in lines[0] if c not in ('config.padding', 'config.input_shape')]
  for line in lines:
    line['step'] = line['epoch']
  lines[3]['step'] = '5'
  text = io.StringIO()
  writer = csv.DictWriter(text, columns, extrasaction='ignore')
  writer.writeheader()
  writer.writerows(lines)
  path.write_bytes(gzip.compress(text.getvalue().encode()))
  return [int(line['step']) for line in lines]


@pytest.mark.slow  # the end-to-end run
def test_published_protocol_on_a_digits_zoo_without_padding(workdir, tmp_path, capsys):
  zoo = load_zoo(workdir / 'zoo')
  assert zoo.config.snapshot_epochs[-1] == 6
  directory = tmp_path / 'digits'
  step = _export_without_padding(zoo, directory)
  argv = ['--tiny', '--zoo-dir', str(directory), '--workdir', str(tmp_path / 'x')]
  with pytest.raises(gmn_jax.ZooError, match='vanishes at Conv_2.*--padding'):
    experiment.run(argv)
  # The command line says it in one line, exit code 1; --debug shows the traceback.
  with pytest.raises(SystemExit) as exit_info:
    experiment.main(argv)
  assert exit_info.value.code == 1
  err = capsys.readouterr().err
  errors = [line for line in err.splitlines() if line.startswith('error: ')]
  assert len(errors) == 1 and errors[0].startswith('error: ZooError: '), err
  assert 'vanishes at Conv_2' in errors[0] and 'Traceback' not in err, err
  with pytest.raises(gmn_jax.ZooError):
    experiment.main(argv + ['--debug'])
  (directory / 'arch.json').write_text('{"padding": "SAME"}')
  order = np.random.default_rng(3).permutation(len(step))
  (tmp_path / 'nfn_split.csv').write_text(''.join(f'{r}\n' for r in order))
  out = tmp_path / 'run'
  experiment.main(['--tiny', '--zoo-dir', str(directory), '--protocol', 'published',
                   '--split-file', str(tmp_path / 'nfn_split.csv'), '--final-step', '6',
                   '--methods', 'statnn', '--epochs', '3', '--probes', '0',
                   '--workdir', str(out)])
  # NFN's loader, step by step, on the files: permute, keep step 86 (here 6), split.
  kept = [int(r) for r in order if step[r] == 6]
  positions = list(range(int(0.5 * len(kept))))
  random.Random(0).shuffle(positions)
  cut = int(0.8 * len(positions))
  expected = {'train': [kept[i] for i in positions[:cut]],
              'val': [kept[i] for i in positions[cut:]], 'test': kept[int(0.5 * len(kept)):]}
  assert 3 not in kept and len(kept) == len(step) // 4 - 1  # member 0 has no step 6
  assert json.loads((out / 'split.json').read_text()) == expected
  results = json.loads((out / 'results.json').read_text())
  assert results['protocol']['protocol'] == 'published'
  assert results['protocol']['final_step'] == 6
  assert results['rows'] == {'train': len(expected['train']), 'val': len(expected['val']),
                             'test': len(expected['test']), 'dropped_diverged': 0}
  assert 'Protocol: the published protocol' in (out / 'results.md').read_text()
  lines = _read_csv(out / 'predictions.csv')
  assert [int(line['row']) for line in lines] == expected['test']
  log = (out / 'runs' / 'statnn' / 'log.jsonl').read_text().splitlines()
  taus = [json.loads(line)['val_kendall_tau'] for line in log]
  assert len(taus) == 3 and results['methods']['statnn']['best_epoch'] == np.argmax(taus) + 1

"""End to end: `python -m experiments.generalization --tiny` trains on held-out-split zoo
models and its GMN beats a constant predictor; a rerun reuses the zoo and checkpoints;
diverged zoo members are dropped."""

import json

import numpy as np
import pytest

from experiments import generalization as experiment
from gmn_jax.tasks.generalization import encode_zoo
from gmn_jax.zoos.zoo import load_zoo


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp('generalization')
  experiment.main(['--tiny', '--workdir', str(path)])
  return path


def test_gmn_beats_a_constant_predictor_on_held_out_models(workdir):
  results = json.loads((workdir / 'results.json').read_text())
  gmn, constant = results['methods']['gmn']['test'], results['constant_predictor']
  assert results['rows']['test'] > 0 and results['rows']['train'] > 0
  assert gmn['kendall_tau'] > 0.2
  assert gmn['r2'] > constant['r2'] and gmn['mse'] < constant['mse']
  assert results['methods']['statnn_gbm']['test']['mse'] < constant['mse']
  for name in ('results.md', 'predictions.png', 'learning_curves.png'):
    assert (workdir / name).stat().st_size > 0


def test_rerun_reuses_zoo_and_checkpoints(workdir, capsys):
  before = json.loads((workdir / 'results.json').read_text())
  experiment.main(['--tiny', '--workdir', str(workdir)])
  after = json.loads((workdir / 'results.json').read_text())
  assert after['methods']['gmn']['test'] == before['methods']['gmn']['test']
  assert after['total_seconds'] < before['total_seconds']
  assert 'GMN' in capsys.readouterr().out


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

"""End to end: `python -m experiments.generalization --tiny` trains on held-out-split zoo
models and its GMN beats a constant predictor; a rerun reuses the zoo and checkpoints."""

import json

import pytest

from experiments import generalization as experiment


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
  for name in ('results.md', 'predictions.png', 'learning_curves.png'):
    assert (workdir / name).stat().st_size > 0


def test_rerun_reuses_zoo_and_checkpoints(workdir, capsys):
  before = json.loads((workdir / 'results.json').read_text())
  experiment.main(['--tiny', '--workdir', str(workdir)])
  after = json.loads((workdir / 'results.json').read_text())
  assert after['methods']['gmn']['test'] == before['methods']['gmn']['test']
  assert after['total_seconds'] < before['total_seconds']
  assert 'GMN' in capsys.readouterr().out

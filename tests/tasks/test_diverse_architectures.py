"""End to end: `python -m experiments.diverse_architectures --tiny` generates a zoo of three
families, trains GMN on one split, and GMN beats a constant predictor on held-out networks of
the three families together; the report holds per-network predictions. The settings' summary
(mean ± sd over seeds, GMN's margins) is checked on made-up results."""

import csv
import json

import numpy as np
import pytest

from experiments import diverse_architectures as experiment
from gmn_jax.tasks import diverse_architectures as task


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = tmp_path_factory.mktemp('diverse')
  experiment.main(['--tiny', '--workdir', str(path)])
  return path


@pytest.mark.slow  # the end-to-end run
def test_gmn_beats_a_constant_predictor_on_held_out_networks_of_three_families(workdir):
  results = json.loads((workdir / 'results.json').read_text())
  tested = [f for f, c in results['families'].items() if c['test'] > 0]
  assert len(tested) >= 3
  gmn, constant = results['methods']['gmn']['test'], results['constant_predictor']
  assert gmn['kendall_tau'] > 0.3
  assert gmn['r2'] > constant['r2'] + 0.1 and gmn['mse'] < constant['mse']
  for name in ('results.md', 'predictions.png', 'accuracy_histogram.png',
               'learning_curves.png'):
    assert (workdir / name).stat().st_size > 0
  with open(workdir / 'predictions.csv') as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == results['rows']['test']
  assert {r['family'] for r in rows} == set(tested)
  true = np.array([float(r['test_accuracy']) for r in rows])
  pred = np.array([float(r['gmn']) for r in rows])
  assert np.mean((true - pred) ** 2) == pytest.approx(gmn['mse'], abs=1e-5)


def test_splits_are_by_network_and_ood_tests_only_the_largest_hidden_size():
  table = {'member': np.arange(40), 'hidden': np.repeat([4, 8], 20)}
  config = task.DiverseArchitecturesConfig(split='ood')
  train, val, test = task.split(config, table)
  assert set(table['hidden'][test]) == {8} and set(table['hidden'][np.r_[train, val]]) == {4}
  train, val, test = task.split(task.DiverseArchitecturesConfig(data_fraction=0.1), table)
  assert not set(train) & set(test) and not set(val) & set(test) and len(train) == 2
  with pytest.raises(ValueError, match='ood'):
    task.split(config, {'member': np.arange(4), 'hidden': np.full(4, 8)})


def test_summary_gives_mean_sd_over_seeds_and_gmn_margins_per_setting(tmp_path):
  from gmn_jax.tasks.diverse_architectures import report as diverse_report
  result = lambda gmn, dmc: {
      'rows': {'train': 10, 'val': 2, 'test': 5},
      'constant_predictor': {'r2': 0.0, 'kendall_tau': 0.0},
      'methods': {'gmn': {'test': {'r2': gmn, 'kendall_tau': gmn}},
                  'dmc': {'test': {'r2': dmc, 'kendall_tau': dmc}}}}
  summary = diverse_report.summarize({'full': [result(0.8, 0.5), result(0.6, 0.7)],
                                      'ood': [result(0.4, 0.1)]})
  full = summary['settings']['full']['methods']['gmn']
  assert full['r2_mean'] == pytest.approx(0.7) and full['r2_sd'] == pytest.approx(0.1)
  margins = diverse_report.margins(summary)
  assert margins['full']['dmc']['r2'] == pytest.approx(0.1)
  assert not margins['full']['dmc']['ahead_every_seed']  # behind in the second seed
  assert margins['ood']['dmc']['ahead_every_seed']
  diverse_report.write_summary(tmp_path, summary)
  md = (tmp_path / 'summary.md').read_text()
  assert '0.700 ± 0.100' in md and '| ood | +0.300 / +0.300 ✓ |' in md
  assert json.loads((tmp_path / 'summary.json').read_text())['margins'] == margins


def test_method_overrides_give_each_method_its_own_training():
  config = task.DiverseArchitecturesConfig(
      method_overrides={'dmc': {'learning_rate': 1e-2, 'epochs': 20, 'hidden': 16}})
  dmc, gmn = config.for_method('dmc'), config.for_method('gmn')
  assert (dmc.train.learning_rate, dmc.train.epochs, dmc.hidden) == (1e-2, 20, 16)
  assert gmn.train == config.train and gmn.hidden == config.hidden
  assert dmc.train.batch_size == config.train.batch_size  # the rest is shared
  assert set(task.DiverseArchitecturesConfig().method_overrides) <= set(task.REGISTRY)
  with pytest.raises(ValueError, match='may set'):
    task.DiverseArchitecturesConfig(method_overrides={'dmc': {'lr': 1e-2}})

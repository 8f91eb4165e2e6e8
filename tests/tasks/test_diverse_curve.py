"""Learning curves over zoo size (`python -m experiments.diverse_architectures --curve`): nested
training sets, one test set, every point kept and skipped when the curve runs again."""

import json

import numpy as np
import pytest

from experiments import diverse_architectures as experiment
from gmn_jax.tasks import diverse_architectures as task
from gmn_jax.tasks.diverse_architectures import curve as curve_lib

ARGS = ['--tiny', '--curve', '--curve-sizes', '8', '24', '--methods', 'gmn', 'statnn',
        '--curve-max-steps', '6']


def test_members_for_gives_a_pool_of_the_largest_size():
  members = curve_lib.members_for((200, 1000, 3000), 0.15, 0.07)
  assert round(members * 0.85) - round(0.07 * round(members * 0.85)) >= 3000 * 1.02 - 2
  config = task.DiverseArchitecturesConfig(test_fraction=0.15, val_fraction=0.07)
  train = curve_lib.curve_train_config('dmc', config, 3000, max_steps=400)
  assert train.epochs == 4  # 94 steps an epoch
  assert curve_lib.curve_train_config('dmc', config, 200, max_steps=400).epochs == 12
  assert curve_lib.curve_train_config('dmc', config, 200).epochs == 12


@pytest.mark.slow  # generates a zoo and trains 4 points
def test_curve_trains_nested_sets_and_resumes(tmp_path):
  experiment.main(ARGS + ['--workdir', str(tmp_path)])
  result = json.loads((tmp_path / 'curve.json').read_text())
  assert result['sizes'] == [8, 24] and result['methods'] == ['gmn', 'statnn']
  points = {(p['method'], p['n_train']): p for p in result['points']}
  assert set(points) == {(m, n) for m in ('gmn', 'statnn') for n in (8, 24)}
  assert all(p['steps'] <= 6 and np.isfinite(p['test_r2']) for p in points.values())
  assert result['rows']['pool'] >= 24
  assert (tmp_path / 'curve.png').stat().st_size > 0
  assert '| GMN |' in (tmp_path / 'curve.md').read_text()
  # A second run reads the saved points: change one and it shows in the table.
  path = tmp_path / 'points' / 'gmn-n8.json'
  point = json.loads(path.read_text())
  path.write_text(json.dumps({**point, 'test_r2': 0.123456}))
  experiment.main(ARGS + ['--workdir', str(tmp_path)])
  again = json.loads((tmp_path / 'curve.json').read_text())
  assert [p['test_r2'] for p in again['points']][0] == 0.123456
  members = str(curve_lib.members_for((8, 24), 0.15, 0.07))  # the zoo made above
  with pytest.raises(ValueError, match='fewer than the largest size 500'):
    experiment.run(ARGS[:3] + ['8', '500'] + ARGS[5:] + ['--workdir', str(tmp_path),
                                                         '--members', members])

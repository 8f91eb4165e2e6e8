"""Finite values where networks enter: zoo readers and zoo encoders drop or refuse NaN rows.

Under `jax.jit`/`jax.vmap` (how a zoo is encoded) `pg.encode` cannot raise, so NaN would enter
the graphs silently; the host-side checks of `gmn_jax.graphs.finite` catch it. Corner cases: a
NaN row and an infinite row in one zoo, a NaN only in the probe outputs, a non-numeric
`test_accuracy` cell, a missing one.
"""

import gzip
import warnings

import jax
import numpy as np
import pytest

import gmn_jax
from gmn_jax.graphs import finite
from gmn_jax.tasks import generalization
from tests.support import models
from tests.zoos.test_small_cnn_zoo import _write_fixture


def _stacked_mlp(n=4):
  case = models.get('mlp')
  return jax.tree.map(lambda a: np.stack([np.asarray(a) * (1 + 0.1 * k) for k in range(n)]),
                      case.variables)


def test_finite_rows_and_the_message():
  params = _stacked_mlp()
  params['params']['Dense_1']['kernel'][1, 0, 0] = np.nan
  params['params']['Dense_2']['bias'][3, 0] = -np.inf
  np.testing.assert_array_equal(finite.finite_rows(params), [True, False, True, False])
  with pytest.raises(ValueError, match=r'INR zoo: 2 rows \(1, 3\) of 4 hold NaN or infinite'):
    finite.check_rows(params, 'INR zoo')
  finite.check_rows(_stacked_mlp(), 'INR zoo')  # control: nothing to refuse


def test_nan_enters_silently_under_vmap_and_the_host_check_catches_it(traced):
  pg, _, _ = traced('mlp')
  params = _stacked_mlp()
  params['params']['Dense_0']['kernel'][2, 1, 1] = np.nan
  stacked = jax.jit(jax.vmap(pg.encode))(params)  # no error: why the check is on the host
  assert np.isnan(np.asarray(stacked.edges['weight'])[2]).any()
  with pytest.raises(ValueError, match=r'zoo: 1 row \(2\) of 4 encodes to NaN'):
    finite.check_encoded(stacked, 'zoo')
  finite.check_encoded(jax.jit(jax.vmap(pg.encode))(_stacked_mlp()), 'zoo')  # control


def test_small_cnn_zoo_drops_non_finite_rows_with_a_count(tmp_path):
  directory = tmp_path / 'zoo'
  weights = _write_fixture(directory)
  weights[2, 100] = np.nan
  weights[4, 4000] = np.inf
  np.save(directory / 'weights.npy', weights)
  said = []
  zoo = gmn_jax.read_small_cnn_zoo(directory, log=said.append)
  table = zoo.metrics[zoo.widths[0]]
  np.testing.assert_array_equal(table['row'], [0, 1, 3, 5])
  assert np.isfinite(jax.tree.leaves(zoo.params[zoo.widths[0]])[0]).all()
  assert any('dropped 2 rows (2, 4) of weights.npy holding NaN or infinite' in s for s in said)
  with pytest.warns(UserWarning, match=r'dropped 2 rows \(2, 4\)'):
    gmn_jax.read_small_cnn_zoo(directory)
  # The encoder then sees finite rows only, and reports none dropped.
  _, encoded_table, _, dropped = generalization.encode_zoo(zoo)
  assert dropped == 0 and len(encoded_table['row']) == 4


def test_small_cnn_zoo_metrics_must_be_numbers(tmp_path):
  directory = tmp_path / 'zoo'
  _write_fixture(directory)
  path = directory / 'metrics.csv.gz'
  lines = gzip.decompress(path.read_bytes()).decode().splitlines()
  header = lines[0].split(',')
  column = header.index('test_accuracy')
  cells = lines[4].split(',')
  cells[column] = 'n/a'
  lines[4] = ','.join(cells)
  path.write_bytes(gzip.compress('\n'.join(lines).encode()))
  with pytest.raises(gmn_jax.ZooError, match=r"column test_accuracy must hold numbers, but lines "
                     r"\[5\] hold \['n/a'\]"):
    gmn_jax.read_small_cnn_zoo(directory)
  cells[column] = ''  # a missing accuracy: that row is dropped, not the zoo refused
  lines[4] = ','.join(cells)
  path.write_bytes(gzip.compress('\n'.join(lines).encode()))
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    zoo = gmn_jax.read_small_cnn_zoo(directory)
  assert any('dropped 1 row (3)' in str(w.message) for w in caught)
  assert 3 not in zoo.metrics[zoo.widths[0]]['row']


def test_zoo_encoder_drops_infinite_rows(tmp_path):
  """An infinite weight passed `largest <= max_abs_param` with the default bound (inf)."""
  directory = tmp_path / 'zoo'
  _write_fixture(directory)
  zoo = gmn_jax.read_small_cnn_zoo(directory)
  width = zoo.widths[0]
  params = jax.tree.map(np.array, zoo.params[width])  # writable copies
  params['params']['Dense_0']['kernel'][1, 0, 0] = np.inf
  zoo.params[width] = params
  _, table, _, dropped = generalization.encode_zoo(zoo)
  assert dropped == 1 and 1 not in table['row'] and len(table['row']) == 5

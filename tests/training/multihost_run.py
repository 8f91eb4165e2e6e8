"""The run the two-host test trains, on two hosts (multihost_worker.py) and on one device."""

import numpy as np

import gmn_jax
from gmn_jax.training.fit import TrainConfig, fit, predict
from tests.training.test_fit import _data

MODEL = gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=1, readout_hidden=8)
CONFIG = TrainConfig(epochs=1, batch_size=8, learning_rate=3e-3)


def run(workdir, mesh=None):
  """(FitResult, validation predictions) of a one-epoch fit on 16 graphs."""
  data, train, val = _data(24), np.arange(0, 16), np.arange(16, 24)
  result = fit(MODEL, data, train, val, CONFIG, workdir, progress=False, mesh=mesh)
  return result, predict(MODEL, result.params, data, val, batch_size=8, mesh=mesh)

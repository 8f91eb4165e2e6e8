"""What the two-host test runs, on two hosts (multihost_worker.py) and on one device: a fit and
a zoo."""

import dataclasses

import numpy as np

import gmn_jax
from gmn_jax.training.fit import TrainConfig, fit, predict
from tests.training.test_fit import _data

MODEL = gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=1, readout_hidden=8)
CONFIG = TrainConfig(epochs=1, batch_size=8, learning_rate=3e-3)
# Two shards of 3 members: on 4 devices each shard is padded to 4 members, one per device.
ZOO = dataclasses.replace(gmn_jax.ZooConfig.tiny(), num_members=6, shard_size=3)


def run(workdir, mesh=None):
  """(FitResult, validation predictions) of a one-epoch fit on 16 graphs."""
  data, train, val = _data(24), np.arange(0, 16), np.arange(16, 24)
  result = fit(MODEL, data, train, val, CONFIG, workdir, progress=False, mesh=mesh)
  return result, predict(MODEL, result.params, data, val, batch_size=8, mesh=mesh)


def zoo(workdir, mesh=None) -> gmn_jax.Zoo:
  """The test zoo `ZOO`, generated into `workdir/zoo`."""
  return gmn_jax.generate_zoo(ZOO, f'{workdir}/zoo', progress=False, mesh=mesh)

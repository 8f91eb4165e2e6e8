"""What the two-host test runs, on two hosts (multihost_worker.py) and on one device: a fit and
a zoo."""

import dataclasses

import gmn_jax
from gmn_jax.training.fit import fit, predict
from tests.training.test_fit import CONFIG, MODEL, TRAIN, VAL, _data

# Two shards of 3 members: on 4 devices each shard is padded to 4 members, one per device.
# 64 training images (4 steps an epoch, not 16), 32 test images: on two hosts the zoo, not
# the fit, took most of this test.
ZOO = dataclasses.replace(gmn_jax.ZooConfig.tiny(), num_members=6, shard_size=3, max_train=64,
                          max_test=32)


def run(workdir, mesh=None):
  """(FitResult, validation predictions) of test_fit.py's run (`MODEL`, `CONFIG`, `_data()`),
  whose programs the persistent compilation cache holds once test_fit.py or
  fit_on_devices.py compiled them."""
  data = _data()
  result = fit(MODEL, data, TRAIN, VAL, CONFIG, workdir, progress=False, mesh=mesh)
  return result, predict(MODEL, result.params, data, VAL, batch_size=8, mesh=mesh)


def zoo(workdir, mesh=None) -> gmn_jax.Zoo:
  """The test zoo `ZOO`, generated into `workdir/zoo`."""
  return gmn_jax.generate_zoo(ZOO, f'{workdir}/zoo', progress=False, mesh=mesh)

"""fit, predict and zoo generation on a mesh of 4 simulated CPU devices, in one process and
across two (see `tests/support/devices.py`)."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import gmn_jax

from tests.support.devices import ROOT, run_on_devices
from tests.training import multihost_run

pytestmark = pytest.mark.slow  # pytest subprocesses on 4 simulated devices, two hosts


def test_fit_on_four_devices():
  run_on_devices('tests/training/fit_on_devices.py')


def test_a_device_run_past_its_timeout_says_so():
  with pytest.raises(AssertionError, match='timed out: still running after 5 s'):
    run_on_devices('tests/support/hang_on_devices.py', timeout=5)


def test_fit_and_zoo_on_two_hosts_of_two_devices(tmp_path):
  """Two processes joined by jax.distributed (gloo collectives on CPU) train one run whose
  losses and predictions are those of one device, and generate one zoo, its members split
  over the 4 devices (padded: 3 members a shard), whose shards process 0 alone writes and
  whose members equal those generated on one device."""
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = s.getsockname()[1]
  hosts = []
  for i in range(2):
    env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2',
               JAX_PLATFORMS='cpu', JAX_COORDINATOR_ADDRESS=f'localhost:{port}',
               JAX_NUM_PROCESSES='2', JAX_PROCESS_ID=str(i),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    worker = [sys.executable, str(ROOT / 'tests/training/multihost_worker.py'),
              str(tmp_path / 'hosts')]
    hosts.append(subprocess.Popen(worker, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  single, single_preds = multihost_run.run(tmp_path / 'one')  # meanwhile, on one device
  single_zoo = multihost_run.zoo(tmp_path / 'one')
  try:
    outputs = [h.communicate(timeout=1200)[0] for h in hosts]
  finally:
    for h in hosts:
      h.kill()
  for i, (h, out) in enumerate(zip(hosts, outputs)):
    assert h.returncode == 0, f'host {i} failed:\n{out[-5000:]}'
    result = json.loads(next(l for l in out.splitlines() if l.startswith('RESULT '))[7:])
    for a, b in zip(result['history'], single.history):
      np.testing.assert_allclose([a[k] for k in b], [b[k] for k in b], rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(result['predictions'], single_preds, rtol=1e-4, atol=1e-6)
    assert result['zoo_written'] == (['shard_00000', 'shard_00001'] if i == 0 else [])
    assert result['zoo_members'] == 6 * 3  # rows: 6 members x 3 snapshots, on both hosts
  # process 0 saved the last epoch's checkpoint
  assert (tmp_path / f'hosts/model/checkpoints/{multihost_run.CONFIG.epochs}').exists()
  zoo = gmn_jax.load_zoo(tmp_path / 'hosts/zoo')  # what process 0 wrote
  (width,) = single_zoo.widths
  for name, column in single_zoo.metrics[width].items():
    if np.issubdtype(np.asarray(column).dtype, np.number):
      np.testing.assert_allclose(zoo.metrics[width][name], column, rtol=1e-4, atol=1e-5,
                                 err_msg=name)
    else:  # diverged flags, categorical hyperparameters
      np.testing.assert_array_equal(zoo.metrics[width][name], column, err_msg=name)
  for a, b in zip(jax.tree.leaves(zoo.params[width]), jax.tree.leaves(single_zoo.params[width])):
    assert a.shape == b.shape and a.shape[0] == 6 * 3
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  first = jax.tree.leaves(single_zoo.params[width])[0]
  assert not np.allclose(first[-1], first[-4])  # members differ: a zoo, not one member copied

"""fit and predict on a mesh of 4 simulated CPU devices, in one process and across two
(see `tests/support/devices.py`)."""

import os
import socket
import subprocess
import sys

from tests.support.devices import ROOT, run_on_devices


def test_fit_on_four_devices():
  run_on_devices('tests/training/fit_on_devices.py')


def test_fit_on_two_hosts_of_two_devices(tmp_path):
  """Two processes joined by jax.distributed (gloo collectives on CPU) train one run."""
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = s.getsockname()[1]
  hosts = []
  for i in range(2):
    env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2',
               JAX_PLATFORMS='cpu', JAX_COORDINATOR_ADDRESS=f'localhost:{port}',
               JAX_NUM_PROCESSES='2', JAX_PROCESS_ID=str(i),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]))
    hosts.append(subprocess.Popen(
        [sys.executable, str(ROOT / 'tests/training/multihost_worker.py'), str(tmp_path)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = [h.communicate(timeout=600)[0] for h in hosts]
  for i, (h, out) in enumerate(zip(hosts, outputs)):
    assert h.returncode == 0, f'host {i} failed:\n{out[-5000:]}'
    assert f'host {i}: ok' in out
  assert (tmp_path / 'hosts/model/checkpoints').exists()

"""Running tests on several simulated CPU devices.

XLA fixes the number of host devices when JAX starts, and the suite's processes start with one;
so the mesh tests live in modules named `*_on_devices.py` (which pytest does not collect by
itself) and `run_on_devices` runs one in a fresh pytest process with
`XLA_FLAGS=--xla_force_host_platform_device_count=N`, failing with that run's output.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_on_devices(module: str, devices: int = 4, timeout: float = 300) -> None:
  """Runs the tests of `module` (a path under the repository root) on `devices` CPU devices."""
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
             JAX_PLATFORMS='cpu')
  env.pop('PYTEST_XDIST_WORKER', None)
  run = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                        '-p', 'no:randomly', '-x', str(ROOT / module)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=timeout)
  if run.returncode != 0:
    raise AssertionError(f'{module} on {devices} devices failed:\n{run.stdout[-6000:]}'
                         f'\n{run.stderr[-3000:]}')

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


def run_on_devices(module: str, devices: int = 4, timeout: float = 600) -> None:
  """Runs the tests of `module` (a path under the repository root) on `devices` CPU devices.

  Raises:
    AssertionError: a test failed, or the run outlived `timeout` seconds; with the child's
      output (verbose: the tests that finished are named).
  """
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
             JAX_PLATFORMS='cpu')
  env.pop('PYTEST_XDIST_WORKER', None)
  try:
    run = subprocess.run([sys.executable, '-m', 'pytest', '-v', '-p', 'no:cacheprovider',
                          '-p', 'no:randomly', '-x', str(ROOT / module)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=timeout)
  except subprocess.TimeoutExpired as stopped:
    raise AssertionError(
        f'{module} on {devices} devices timed out: still running after {timeout:.0f} s and '
        f'killed (a loaded machine, or a test that hangs). Its output so far:\n'
        f'{_text(stopped.stdout)[-6000:]}\n{_text(stopped.stderr)[-3000:]}') from None
  if run.returncode != 0:
    raise AssertionError(f'{module} on {devices} devices failed:\n{run.stdout[-6000:]}'
                         f'\n{run.stderr[-3000:]}')


def _text(output: str | bytes | None) -> str:
  """What a killed child had written (bytes until Python 3.12 decodes it for text mode)."""
  if isinstance(output, bytes):
    return output.decode(errors='replace')
  return output or ''

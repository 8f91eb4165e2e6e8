"""A stand-in for `wandb` when running the official neural-graphs code offline
(`benchmarks/inr_official.py`): `init`, `log` and `run.path`, nothing sent anywhere. Every
`log` call is appended as one JSON line to `$WANDB_STUB_LOG` (tensors as floats), so the
official run's validation and test accuracies can be read back. Not part of gmn_jax."""

import json
import os


class Settings:
  def __init__(self, **kwargs):
    self.kwargs = kwargs


class _Run:
  path = 'offline/stub/run'


run = None


def init(**kwargs):
  global run
  run = _Run()
  return run


def _plain(value):
  if hasattr(value, 'item') and getattr(value, 'ndim', 0) == 0:
    return value.item()
  return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def log(data, **kwargs):
  path = os.environ.get('WANDB_STUB_LOG')
  if path:
    with open(path, 'a') as f:
      f.write(json.dumps({k: _plain(v) for k, v in data.items()}) + '\n')

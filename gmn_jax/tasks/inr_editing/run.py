"""The INR-editing task's driver: every method of the config, each trained once and kept in
`workdir/methods/`, then the report. Host-side."""

from __future__ import annotations

import functools
import json
import pathlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from gmn_jax.tasks.inr_editing import report as report_lib
from gmn_jax.tasks.inr_editing.config import EditingConfig
from gmn_jax.tasks.inr_editing.data import EditingData
from gmn_jax.tasks.inr_editing.train import train_method
from gmn_jax.training.run_directory import check_run
from gmn_jax.zoos.inr import zoo as inr_zoo_lib


def _load_method(directory: pathlib.Path, name: str) -> dict[str, Any] | None:
  path = directory / f'{name}.npz'
  if not (path.exists() and (directory / f'{name}.json').exists()):
    return None
  arrays = np.load(path)
  return {**json.loads((directory / f'{name}.json').read_text()),
          'test_mse': arrays['test_mse'], 'pictures': arrays['pictures']}


def _save_method(directory: pathlib.Path, name: str, result: dict[str, Any]) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  np.savez(directory / f'{name}.tmp.npz', test_mse=result['test_mse'],
           pictures=result['pictures'])
  (directory / f'{name}.tmp.npz').replace(directory / f'{name}.npz')
  summary = {k: v for k, v in result.items() if k not in ('test_mse', 'pictures')}
  (directory / f'{name}.json').write_text(json.dumps(summary))  # written last: done


def train_and_evaluate(config: EditingConfig, workdir: str | pathlib.Path,
                       progress: bool = True,
                       on_epoch_end: Callable[[str, int, dict[str, float]], None] | None = None
                       ) -> dict[str, Any]:
  """Runs the INR-editing experiment into `workdir` (see the module docstring). Host-side.

  `on_epoch_end` is called with (method, epoch, history record) after each checkpoint.

  Returns:
    The results (as in `results.json`): per method the mean test MSE, its standard error,
    the best-validation epoch and seconds; the split sizes; the value convention.
  """
  tic = time.time()
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  check_run(workdir, {'edit': config.edit, 'zoo': config.zoo.to_json(), 'seed': config.seed,
                      'val': config.val_fraction, 'test': config.test_fraction,
                      'model': [config.hidden, config.layers, list(config.flat_hidden),
                                config.epochs, config.batch_size, config.learning_rate]})
  method_dir = workdir / 'methods'
  zoo = inr_zoo_lib.generate_inr_zoo(config.zoo, workdir / 'zoo', progress=progress)
  data = EditingData(zoo, config)
  results = {}
  for name in config.methods:
    result = _load_method(method_dir, name)
    if result is None:
      result = train_method(name, data, config, progress, method_dir / name, None if
                            on_epoch_end is None else functools.partial(on_epoch_end, name))
      _save_method(method_dir, name, result)
    results[name] = result
  return report_lib.write(workdir, config, data, results, time.time() - tic)

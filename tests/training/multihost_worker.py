"""One host of a two-host data-parallel fit (launched twice by test_sharding.py).

Each process has 2 CPU devices; `gmn_jax.initialize_distributed` joins them through
`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` into one 4-device mesh whose
collectives (the gradient all-reduce) cross the processes (gloo). Each host feeds its own
devices' sub-batches and both write the orbax checkpoints. Then both generate one tiny zoo
into the same directory, members split over the 4 devices: process 0 alone writes its files,
which the test compares with the same zoo generated on one device.
Prints the history, the predictions and the zoo files each process wrote as one JSON line,
which the test compares with a one-device run.
"""

import json
import sys

import gmn_jax

assert gmn_jax.initialize_distributed()

import jax  # pylint: disable=g-import-not-at-top

from gmn_jax.zoos import shards as shards_lib  # pylint: disable=g-import-not-at-top
from tests.training import multihost_run  # pylint: disable=g-import-not-at-top

WRITTEN = []


def _counting(write):
  def write_shard(directory, name, arrays, meta):
    WRITTEN.append(name)
    return write(directory, name, arrays, meta)
  return write_shard


shards_lib.write_shard = _counting(shards_lib.write_shard)


def main(workdir: str) -> None:
  assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
  assert jax.local_device_count() == 2
  mesh = gmn_jax.make_mesh()
  result, preds = multihost_run.run(workdir, mesh)
  zoo = multihost_run.zoo(workdir, mesh)
  print('RESULT ' + json.dumps({'process': jax.process_index(), 'history': result.history,
                                'predictions': preds.tolist(), 'zoo_written': WRITTEN,
                                'zoo_members': len(zoo)}), flush=True)


if __name__ == '__main__':
  main(sys.argv[1])

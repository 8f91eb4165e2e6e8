"""One host of a two-host data-parallel fit (launched twice by test_sharding.py).

Each process has 2 CPU devices; `gmn_jax.initialize_distributed` joins them through
`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` into one 4-device mesh whose
collectives (the gradient all-reduce) cross the processes (gloo). Each host feeds its own
devices' sub-batches and both write the orbax checkpoints. Prints the history and the
predictions as one JSON line, which the test compares with a one-device run.
"""

import json
import sys

import gmn_jax

assert gmn_jax.initialize_distributed()

import jax  # pylint: disable=g-import-not-at-top

from tests.training import multihost_run  # pylint: disable=g-import-not-at-top


def main(workdir: str) -> None:
  assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
  assert jax.local_device_count() == 2
  mesh = gmn_jax.make_mesh()
  result, preds = multihost_run.run(workdir, mesh)
  print('RESULT ' + json.dumps({'process': jax.process_index(), 'history': result.history,
                                'predictions': preds.tolist()}), flush=True)


if __name__ == '__main__':
  main(sys.argv[1])

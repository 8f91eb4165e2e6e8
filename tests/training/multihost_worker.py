"""One host of a two-host data-parallel fit (launched twice by test_sharding.py).

Each process has 2 CPU devices; `gmn_jax.initialize_distributed` joins them through
`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` into one 4-device mesh whose
collectives (the gradient all-reduce) cross the processes (gloo). Both hosts write the same
orbax checkpoints. Each then trains the same run on its own single device and checks that
the two-host losses, validation metrics and predictions match it.
"""

import sys

import gmn_jax

assert gmn_jax.initialize_distributed()

import jax  # pylint: disable=g-import-not-at-top
import numpy as np

from gmn_jax.training.fit import TrainConfig, fit, predict  # pylint: disable=g-import-not-at-top
from tests.training.test_fit import _data  # pylint: disable=g-import-not-at-top


def main(workdir: str) -> None:
  assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
  assert jax.local_device_count() == 2
  data, train, val = _data(), np.arange(0, 32), np.arange(32, 48)
  model = gmn_jax.GMN(node_dim=8, edge_dim=8, num_layers=1, readout_hidden=8)
  config = TrainConfig(epochs=2, batch_size=8, learning_rate=3e-3)
  mesh = gmn_jax.make_mesh()
  hosts = fit(model, data, train, val, config, f'{workdir}/hosts', progress=False, mesh=mesh)
  p_hosts = predict(model, hosts.params, data, val, batch_size=8, mesh=mesh)
  local = jax.local_devices()[0]
  with jax.default_device(local):
    one = fit(model, data, train, val, config, f'{workdir}/one_{jax.process_index()}',
              progress=False, mesh=gmn_jax.make_mesh(data=1, devices=[local]))
    p_one = predict(model, one.params, data, val, batch_size=8,
                    mesh=gmn_jax.make_mesh(data=1, devices=[local]))
  for a, b in zip(hosts.history, one.history):
    np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=2e-4, atol=1e-5)
  np.testing.assert_allclose(p_hosts, p_one, rtol=1e-4, atol=1e-6)
  print(f'host {jax.process_index()}: ok, train losses '
        f'{[round(h["train_loss"], 6) for h in hosts.history]}', flush=True)


if __name__ == '__main__':
  main(sys.argv[1])

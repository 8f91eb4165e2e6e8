"""Device meshes for training: data parallelism (and optional FSDP) with `jax.sharding`.

A run on several devices uses a `jax.sharding.Mesh` with a `'data'` axis and, optionally, a
`'model'` axis:

- **batches** are split into one padded sub-batch per `'data'` shard, stacked on a leading
  axis `[n_data, ...]` and placed with `NamedSharding(mesh, P('data'))`: every device holds
  whole graphs and runs the metanetwork on them with no communication; XLA sums the
  gradients across the axis (GSPMD, one compiled step).
- **parameters and optimiser state** are replicated, or, on a `'model'` axis of size > 1,
  sharded FSDP-style: each array's largest axis that the `'model'` size divides is split
  over it (arrays with none stay replicated).
- **several hosts**: `initialize_distributed` starts `jax.distributed` from environment
  variables; each host then places only the shards of its own devices
  (`jax.make_array_from_callback`), and orbax writes checkpoints from every host.

Everything here is host-side (it places arrays; it is never called under jit).
"""

from __future__ import annotations

import os
import re
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'
MODEL_AXIS = 'model'


def make_mesh(data: int | None = None, model: int = 1,
              devices: list[jax.Device] | None = None) -> Mesh:
  """A `('data', 'model')` mesh over `devices` (default: every device of every host).

  Args:
    data: size of the `'data'` axis (None: all devices divided by `model`).
    model: size of the `'model'` axis (1: parameters replicated; > 1: FSDP-style sharding).
    devices: the devices to use (default `jax.devices()`).

  Returns:
    A `Mesh` of shape `(data, model)` with Auto axis types.

  Raises:
    ValueError: if `data * model` is not the number of devices.
  """
  devices = list(jax.devices() if devices is None else devices)
  if data is None:
    data = len(devices) // model
  if data * model != len(devices) or data < 1:
    raise ValueError(f'a mesh of data={data} x model={model} needs {data * model} devices, '
                     f'but {len(devices)} were given; choose sizes whose product is '
                     f'{len(devices)}.')
  auto = jax.sharding.AxisType.Auto
  return jax.make_mesh((data, model), (DATA_AXIS, MODEL_AXIS), axis_types=(auto, auto),
                       devices=devices)


def current_mesh(mesh: Mesh | None) -> Mesh | None:
  """`mesh`, or else the mesh set with `jax.set_mesh(...)` (None when none is set).

  This is how a task that calls `fit` runs data-parallel without a mesh argument:
  `with jax.set_mesh(make_mesh()): train_and_evaluate(config, workdir)`.

  Raises:
    ValueError: if the mesh has no `'data'` axis.
  """
  if mesh is None:
    mesh = jax.sharding.get_mesh()
    if mesh.empty:
      return None
  if DATA_AXIS not in mesh.axis_names:
    raise ValueError(f'the mesh has axes {mesh.axis_names}; training needs a {DATA_AXIS!r} '
                     'axis to split batches over (use gmn_jax.make_mesh).')
  return mesh


def data_shards(mesh: Mesh) -> int:
  """Number of `'data'` shards: the sub-batches one global batch is split into."""
  return int(mesh.shape[DATA_AXIS])


def check_batch_size(batch_size: int, mesh: Mesh) -> int:
  """The per-shard batch size. Raises ValueError unless the shards divide `batch_size`."""
  shards = data_shards(mesh)
  if batch_size % shards:
    raise ValueError(f'batch_size {batch_size} cannot be split over {shards} data shards; use '
                     f'a multiple of {shards} (e.g. {-(-batch_size // shards) * shards}).')
  return batch_size // shards


def place(tree: Any, shardings: Any) -> Any:
  """Host (or device) arrays placed with one sharding per leaf; each host builds only the
  shards of its own devices from the same global values."""
  def place_leaf(a, sharding):
    a = np.asarray(jax.device_get(a))
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])
  return jax.tree.map(place_leaf, tree, shardings)


def place_batch(tree: Any, mesh: Mesh) -> Any:
  """Places arrays stacked `[n_data, ...]` (one row per shard) over the `'data'` axis.

  Every host builds the same global arrays; each places only its own devices' rows, so this
  works unchanged on one host or several.
  """
  sharding = NamedSharding(mesh, P(DATA_AXIS))
  return place(tree, jax.tree.map(lambda _: sharding, tree))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """A full copy of every leaf on every device of `mesh`."""
  return place(tree, jax.tree.map(lambda _: replicated(mesh), tree))


def _state_spec(shape: tuple[int, ...], model: int) -> P:
  """FSDP rule: split the largest axis that `model` divides, else replicate."""
  if model == 1:
    return P()
  axes = [i for i in np.argsort(shape)[::-1] if shape[i] % model == 0 and shape[i] >= model]
  if not axes:
    return P()
  spec = [None] * len(shape)
  spec[int(axes[0])] = MODEL_AXIS
  return P(*spec)


def state_shardings(tree: Any, mesh: Mesh) -> Any:
  """A `NamedSharding` per leaf of a train state: replicated over `'data'`, and split over
  `'model'` by the FSDP rule of the module docstring when that axis is larger than 1."""
  model = int(mesh.shape.get(MODEL_AXIS, 1))
  return jax.tree.map(lambda a: NamedSharding(mesh, _state_spec(np.shape(a), model)), tree)


def place_state(tree: Any, mesh: Mesh) -> Any:
  """`tree` placed with `state_shardings` (from host or device arrays, any hosts)."""
  return place(tree, state_shardings(tree, mesh))


def replicated(mesh: Mesh) -> NamedSharding:
  """A sharding that keeps a full copy on every device (readable from every host)."""
  return NamedSharding(mesh, P())


_COLLECTIVE = re.compile(r'\b(all-reduce|all-gather|all-to-all|reduce-scatter|'
                         r'collective-permute)(-start)?\(')


def collectives(compiled: jax.stages.Compiled) -> tuple[int, int, int]:
  """How a compiled (jitted, lowered and compiled) program talks across devices: (collective
  operations in all, those outside its entry computation, i.e. inside loop bodies or other
  called computations, where they run once per iteration; all-gathers among them). Host-side,
  for checking that a multi-device step meets its devices only where it should.
  """
  total = inside = gathers = 0
  entry = False
  for line in compiled.as_text().splitlines():
    if line and not line.startswith(' '):  # a computation's header
      entry = line.startswith('ENTRY')
    found = _COLLECTIVE.search(line)
    if found:
      total += 1
      inside += not entry
      gathers += found.group(1) == 'all-gather'
  return total, inside, gathers


def writes_files() -> bool:
  """Whether this process writes the files that all hosts share (process 0 does; on one host,
  the only process)."""
  return jax.process_index() == 0


def sync_hosts(name: str) -> None:
  """Waits until every host has reached the point called `name` (nothing on one host); e.g.
  after process 0 wrote a file the others read."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def initialize_distributed() -> bool:
  """Starts `jax.distributed` when the environment asks for it; call it before any JAX work.

  Set on every host: `JAX_COORDINATOR_ADDRESS` (host:port of process 0, reachable from all),
  `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID` (0 .. n-1). Without `JAX_COORDINATOR_ADDRESS`
  nothing happens (one host).

  Returns:
    True if `jax.distributed.initialize` was called.

  Raises:
    ValueError: if the coordinator address is set without the process count or id.
  """
  address = os.environ.get('JAX_COORDINATOR_ADDRESS')
  if not address:
    return False
  missing = [k for k in ('JAX_NUM_PROCESSES', 'JAX_PROCESS_ID') if k not in os.environ]
  if missing:
    raise ValueError(f'JAX_COORDINATOR_ADDRESS={address} is set but {", ".join(missing)} '
                     'is not: set JAX_NUM_PROCESSES (hosts in all) and JAX_PROCESS_ID '
                     '(this host, 0-based) on every host.')
  jax.distributed.initialize(address, int(os.environ['JAX_NUM_PROCESSES']),
                             int(os.environ['JAX_PROCESS_ID']))
  return True

"""How fast parameter graphs are made: a zoo of small CNNs, and a ResNet-50.

    python benchmarks/encode.py            # zoo of 1,000 Small-CNN-Zoo CNNs + ResNet-50
    python benchmarks/encode.py --quick    # a smaller zoo, no ResNet-50 (a smoke run: at 100
                                           # members per-call overhead dominates the ratio)

Prints, for the zoo, the time of one vmapped, jitted `pg.encode` over all members against a
plain numpy copy of the same parameter bytes, measured side by side in this process (the
target is a ratio under 3); for ResNet-50, the time to trace and build the template (target
under 30 s) and to encode (target under 2 s).

Timings are the best of many repeats, with the encode and its reference interleaved so that
both see the same load: on a shared machine XLA's multi-threaded loops suffer more from other
processes than a single-threaded numpy copy does. ResNet-50's `edges['weight']` alone is
2.8 GiB, so its encode is bounded by writing a fresh buffer of that size; the benchmark prints
that floor (a jitted `jnp.zeros` of the same shape, and a numpy write of the same bytes).
Calls that touch memory this process never used before also pay the VM's first-touch cost.
"""

import argparse
import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import gmn_jax

sys.path.insert(0, str(Path(__file__).parent))
from _resnet50 import ResNet50  # pylint: disable=g-import-not-at-top


class SmallCNN(nn.Module):
  """The Small CNN Zoo architecture: 3 conv layers of 16 channels, GAP, Dense(10)."""

  @nn.compact
  def __call__(self, x):
    for _ in range(3):
      x = nn.relu(nn.Conv(16, (3, 3), padding='VALID')(x))
    return nn.Dense(10)(x.mean(axis=(1, 2)))


def _best_of(fns: dict, repeats: int) -> dict[str, list[float]]:
  """Seconds of each call of each function, the functions interleaved in every repeat."""
  times = {name: [] for name in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      jax.block_until_ready(fn())
      times[name].append(time.perf_counter() - start)
  return times


def bench_zoo(n_members: int, repeats: int = 50) -> None:
  model, x = SmallCNN(), jnp.ones((1, 28, 28, 1))
  keys = jax.random.split(jax.random.key(0), n_members)
  zoo = jax.jit(jax.vmap(lambda k: model.init(k, x)))(keys)
  one = jax.tree.map(lambda l: l[0], zoo)
  pg = gmn_jax.trace(model, one, x)
  encode = jax.jit(jax.vmap(pg.encode))
  jax.block_until_ready(encode(zoo))
  host = [np.asarray(l) for l in jax.tree.leaves(zoo)]
  times = _best_of({'encode': lambda: encode(zoo),
                    'copy': lambda: [np.copy(l) for l in host]}, repeats)
  t_encode, t_copy = min(times['encode']), min(times['copy'])
  n_bytes = sum(l.nbytes for l in host)
  print(f'zoo: {n_members} CNNs x {pg.n_params} parameters ({n_bytes / 2**20:.1f} MiB), '
        f'graphs of {pg.n_node} nodes, {pg.n_edge} edges, K={pg.kernel_size}')
  print(f'  vmapped encode  {t_encode * 1e3:8.2f} ms   (best of {repeats}; median '
        f'{np.median(times["encode"]) * 1e3:.2f})')
  print(f'  numpy copy      {t_copy * 1e3:8.2f} ms   (best of {repeats}; median '
        f'{np.median(times["copy"]) * 1e3:.2f})')
  print(f'  ratio           {t_encode / t_copy:8.2f}x   (target < 3x)')


def bench_resnet50(repeats: int = 4) -> None:
  model, x = ResNet50(), jnp.ones((1, 224, 224, 3))
  variables = jax.jit(model.init)(jax.random.key(0), x)
  n = sum(l.size for l in jax.tree.leaves(variables))
  start = time.perf_counter()
  pg = gmn_jax.trace(model, variables, x)
  t_trace = time.perf_counter() - start
  print(f'ResNet-50: {n / 1e6:.1f}M parameters -> {pg.n_node} nodes, {pg.n_edge} edges, '
        f'K={pg.kernel_size}')
  print(f'  trace + template {t_trace:8.2f} s   (target < 30 s)')
  start = time.perf_counter()
  graph = jax.block_until_ready(pg.encode(variables))
  t_first = time.perf_counter() - start
  shape = graph.edges['weight'].shape
  zeros = jax.jit(lambda: jnp.zeros(shape, jnp.float32))
  jax.block_until_ready(zeros())
  del graph
  times = _best_of({'encode': lambda: pg.encode(variables), 'zeros': zeros,
                    'numpy': lambda: np.empty(shape, np.float32).fill(0)}, repeats)
  print(f'  encode           {min(times["encode"]):8.2f} s   (target < 2 s; first call '
        f'{t_first:.2f} s with compiling, then ' + ', '.join(f'{t:.2f}' for t in times['encode'])
        + ')')
  print(f'  floor            {min(times["zeros"]):8.2f} s   a fresh jnp.zeros {shape} float32 '
        f'(numpy writes the same bytes in {min(times["numpy"]):.2f} s)')
  graph = pg.encode(variables)
  gib = graph.edges['weight'].nbytes / 2**30
  print(f'  edges["weight"] alone is {gib:.2f} GiB ({pg.n_edge} edges x K={pg.kernel_size} '
        'floats: the 7x7 stem pads every edge to 49)')
  times = _best_of({'decode': lambda: pg.decode(graph)}, 2)['decode']
  print(f'  decode           {times[1]:8.2f} s   (first call {times[0]:.2f} s with compiling)')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true', help='small zoo, skip ResNet-50')
  parser.add_argument('--members', type=int, default=1000)
  args = parser.parse_args()
  print(f'devices: {jax.devices()}')
  bench_zoo(100 if args.quick else args.members)
  if not args.quick:
    bench_resnet50()


if __name__ == '__main__':
  main()

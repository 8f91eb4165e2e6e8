"""How much of a training step the host's batch building costs, and what `fit` saves by reading
each step's loss only after the next step is dispatched.

`fit` builds every batch on the host (packing graphs into a padded budget, drawing and
applying the augmentation's permutations and rescalings) and runs the step on the device.
Reading the loss right after dispatch (`float(loss)`, as `fit` did) makes the host wait for
the device and the device wait for the next batch; reading it one step later lets both run at
once. Both loops run the same jitted step of `fit` on the same batches, in this process,
alternating, and their parameters are checked equal bit for bit:

    python benchmarks/input_pipeline.py                 # GMN, hidden 32, 3 layers, ~1 minute
    python benchmarks/input_pipeline.py --model nggnn --steps 40

The graphs are the generalization task's tiny CNN shapes (random initialisations), augmented
as the task trains (hidden-neuron permutations, ReLU rescalings up to 2x).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

import gmn_jax
from startup import digit_cnn_graphs  # this folder is on the path when run as a script
from gmn_jax.training.fit import TrainConfig, _optimizer, init_params, make_train_step


def run(step_fn, state, data, order, batch_size, budget, seed, pipelined):
  """One pass over `order`; returns the final state and the host seconds spent building."""
  params, opt_state = state
  rng = np.random.default_rng(seed)
  pending, losses = None, []
  for graphs, targets, mask in data.batches(order, batch_size, budget, rng, 2.0):
    params, opt_state, loss = step_fn(params, opt_state, graphs, targets, mask)
    if not pipelined:
      losses.append(float(loss))
      continue
    if pending is not None:
      losses.append(float(pending))
    pending = loss
  if pending is not None:
    losses.append(float(pending))
  return jax.block_until_ready((params, opt_state)), losses


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--model', choices=('gmn', 'nggnn'), default='gmn')
  parser.add_argument('--hidden', type=int, default=32)
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--steps', type=int, default=30)
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  data = digit_cnn_graphs(args.batch * args.steps)
  budget = data.budget(args.batch)
  sizes = dict(max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  h = args.hidden
  model = (gmn_jax.GMN(node_dim=h, edge_dim=h, num_layers=3, readout_hidden=h, **sizes)
           if args.model == 'gmn' else
           gmn_jax.NGGNN(hidden_dim=h, num_layers=3, readout_hidden=h, **sizes))
  tx = _optimizer(TrainConfig(), args.steps)
  order = np.arange(len(data))
  first, _, _ = next(data.batches(order[:1], args.batch, budget))
  params = init_params(model, jax.random.key(0), first)
  state = (params, jax.jit(tx.init)(params))
  step_fn = make_train_step(model, tx)
  run(step_fn, state, data, order[:2 * args.batch], args.batch, budget, 0, False)  # compile
  print(f'jax {jax.__version__}, {jax.devices()[0].platform}, load {os.getloadavg()[0]:.2f}; '
        f'{type(model).__name__} hidden {h}, batch {args.batch}, {args.steps} steps per pass')
  seconds = {False: [], True: []}
  outs = {}
  for _ in range(args.repeats):
    for pipelined in (False, True):
      tic = time.perf_counter()
      outs[pipelined] = run(step_fn, state, data, order, args.batch, budget, 1, pipelined)
      seconds[pipelined].append(time.perf_counter() - tic)
  same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(outs[False]),
                                                  jax.tree.leaves(outs[True])))
  blocking, pipelined = np.median(seconds[False]), np.median(seconds[True])
  print(f'  loss read at once (before)  median {blocking:.2f} s per pass')
  print(f'  loss read a step later (now) median {pipelined:.2f} s per pass')
  print(f'  ratio before / now: {blocking / pipelined:.2f}x; same parameters and losses: {same}')


if __name__ == '__main__':
  main()

"""Train-step throughput of the official (PyTorch) NG-GNN on Small CNN Zoo graphs.

The published neural-graphs code (Kofinas et al. 2024, github.com/mkofinas/neural-graphs) is
run as it is, not copied: its CNN-to-graph conversion (`cnn_to_tg_data`), its Hydra model
config for the CNN-generalisation experiment (`configs/model/pna.yaml` with
`configs/data/zoo_cifar_nfn.yaml`: `GNNForGeneralization` around a 4-layer PNA) and the train
step of its `main.py` (sigmoid, MSE loss, backward, gradient clipping at 10, AdamW lr 1e-3,
weight decay 5e-4, amsgrad). The graphs are randomly initialised Small CNNs (three 3x3
convolutions of 16 channels and a 10-way dense layer on grayscale inputs: 59 neurons, 688
edges), batched 32 at a time as `torch_geometric`'s DataLoader does, the same architecture
and batch as `benchmarks/train_step.py` times in JAX.

This script needs PyTorch, torch_geometric (2.4, no compiled extensions), hydra-core and
random-fourier-features-pytorch, and a checkout of the official code; it does not import
gmn_jax. Run it beside `train_step.py` in the same sitting, e.g.

    /work/venv-torch/bin/python benchmarks/official_nggnn.py --code /work/official/neural-graphs
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import types

import numpy as np


def _official_imports():
  """The official modules. Two imports of `experiments/data_generalization.py` that this
  script never uses are replaced by empty modules when absent: pandas (reads zoo CSVs) and
  `experiments.transformer_generalization` (the ViT zoo, not in the public checkout)."""
  try:
    import pandas  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
  except ImportError:
    sys.modules['pandas'] = types.ModuleType('pandas')
  try:
    import experiments.transformer_generalization.utils  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
  except ImportError:
    stub = types.ModuleType('experiments.transformer_generalization.utils')
    stub.vit_to_tg_data = None
    sys.modules['experiments.transformer_generalization'] = types.ModuleType('stub')
    sys.modules['experiments.transformer_generalization.utils'] = stub
  import hydra  # pylint: disable=import-outside-toplevel
  from omegaconf import OmegaConf  # pylint: disable=import-outside-toplevel
  from experiments.cnn_generalization.utils import cnn_to_tg_data  # pylint: disable=import-outside-toplevel
  from experiments.data_generalization import CNNDataset  # pylint: disable=import-outside-toplevel
  return hydra, OmegaConf, cnn_to_tg_data, CNNDataset


def small_cnn_graphs(n: int, seed: int = 0):
  """n randomly initialised Small CNNs as the official code's `torch_geometric` graphs."""
  import torch  # pylint: disable=import-outside-toplevel
  _, _, cnn_to_tg_data, dataset = _official_imports()
  torch.manual_seed(seed)
  graphs = []
  for _ in range(n):
    layers = [torch.nn.Conv2d(1, 16, 3), torch.nn.Conv2d(16, 16, 3), torch.nn.Conv2d(16, 16, 3),
              torch.nn.Linear(16, 10)]
    weights = [l.weight.detach() for l in layers]
    biases = [l.bias.detach() for l in layers]
    conv_mask = [1 if w.ndim == 4 else 0 for w in weights]
    layer_layout = [weights[0].shape[1]] + [b.shape[0] for b in biases]
    # As the official NFNZooDataset.__getitem__ with linear_as_conv=True, no flattening.
    weights = tuple(dataset._transform_weights_biases(w, (3, 3), linear_as_conv=True)  # pylint: disable=protected-access
                    for w in weights)
    biases = tuple(dataset._transform_weights_biases(b, (3, 3), linear_as_conv=True)  # pylint: disable=protected-access
                   for b in biases)
    graphs.append(cnn_to_tg_data(weights, biases, conv_mask, fmap_size=1,
                                 y=float(torch.rand(())), layer_layout=layer_layout))
  return graphs


def official_model(d_hid: int, code_dir: str):
  """`GNNForGeneralization` (PNA backbone) from the official Hydra configs, width `d_hid`."""
  hydra, omegaconf, _, _ = _official_imports()
  configs = os.path.join(code_dir, 'experiments', 'cnn_generalization', 'configs')
  if not omegaconf.has_resolver('prod'):
    omegaconf.register_new_resolver('prod', lambda x, y: x * y)
  cfg = omegaconf.create({
      'data': omegaconf.load(os.path.join(configs, 'data', 'zoo_cifar_nfn.yaml')),
      'model': omegaconf.load(os.path.join(configs, 'model', 'pna.yaml'))})
  cfg.model.d_hid = d_hid
  return hydra.utils.instantiate(cfg.model)


def benchmark(d_hid: int, batch_size: int, steps: int, code_dir: str) -> dict:
  """Median wall time of the official train step at width `d_hid`."""
  import torch  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel
  import torch_geometric  # pylint: disable=import-outside-toplevel
  graphs = small_cnn_graphs(batch_size * 4)
  batches = [torch_geometric.data.Batch.from_data_list(graphs[i * batch_size:(i + 1) * batch_size])
             for i in range(4)]
  model = official_model(d_hid, code_dir)
  optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4, amsgrad=True)
  criterion = torch.nn.MSELoss()

  def step(batch):
    optimizer.zero_grad()
    out = F.sigmoid(model(batch)).squeeze(-1)
    loss = criterion(out, batch.y.float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
    optimizer.step()
    return loss

  step(batches[0])  # warm-up
  walls = []
  for i in range(steps):
    start = time.perf_counter()
    step(batches[i % len(batches)])
    walls.append(time.perf_counter() - start)
  n_params = sum(p.numel() for p in model.parameters())
  return dict(step_s=float(np.median(walls)), n_params=n_params)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--sizes', default='32,256', help='comma-separated hidden sizes')
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--steps', type=int, default=0, help='timed steps (default by size)')
  parser.add_argument('--threads', type=int, default=0,
                      help='torch intra-op threads (default: torch\'s own choice); on a loaded '
                      'machine 1 thread avoids OpenMP barriers waiting on a descheduled thread')
  parser.add_argument('--code', default='/work/official/neural-graphs',
                      help='checkout of the official neural-graphs code')
  args = parser.parse_args()
  sys.path.insert(0, args.code)
  import torch  # pylint: disable=import-outside-toplevel
  if args.threads:
    torch.set_num_threads(args.threads)
  print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, '
        f'{len(os.sched_getaffinity(0))} CPU cores, load average {os.getloadavg()[0]:.1f}')
  for h in [int(s) for s in args.sizes.split(',')]:
    steps = args.steps or (12 if h <= 64 else 5)
    r = benchmark(h, args.batch, steps, args.code)
    print(f"official NG-GNN (PNA) hidden {h}, 4 layers: {r['n_params']} params, step "
          f"{1e3 * r['step_s']:.1f} ms, {args.batch / r['step_s']:.1f} graphs/s", flush=True)
  print(f'(median over the timed steps; load average now {os.getloadavg()[0]:.1f})')


if __name__ == '__main__':
  main()

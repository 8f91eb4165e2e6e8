"""Why a weights-only graph metanetwork does (not) fit its INR training set: one change at a time.

Trains the INR classification task's weights-only NG-GNN (or GMN) on a run's zoo and split,
with the task's own model builder, augmentation and optimiser, and prints the training loss in
windows of steps (does it leave ln 10 = 2.303 within the epoch?) and the validation and test
accuracy at the end, for each variant asked for:

    python benchmarks/inr_weights_only.py /tmp/inr-work/default \
        --variant graph --variant dataset --variant dataset,fourier --epochs 1

A variant is comma-separated changes to the base (the task's NG-GNN with per-INR
standardisation and the pooled readout, `readout_pool='all'`, the task's augmentation, warm-up
then cosine decay; the task's own defaults for the weights-only methods are now `dataset` and
`outreadout`): `graph`, `dataset`, `none` (normalisation),
`noflip` (permutations only), `noaug`, `fourier` (neural graphs' value encoding: 128 Gaussian
random frequencies of scale 3), `constant` (warm-up, then a constant learning rate, as neural
graphs), `gmn` (GMN instead of NG-GNN), `stdreadout` (the task's `standardize_readout`: the readout
MLP's input, the pooled vectors, standardised per feature with their statistics over 512
training INRs at initialisation),
`lnreadout` (the same standardised per graph over its features), `readoutonly` (only the
readout trains: the message passing stays at its random initialisation), `smallembed` (the
encoder's embeddings of type, layer, position and operation, the same in every INR, drawn
10 times smaller), `lr=X` (the learning rate); neural graphs' structure, one piece at a time:
`graphnorm` (NG-GNN's `norm='graph'`: one mean and variance per INR over all its node vectors,
edges unnormalised), `nonorm` (`norm='none'`), `noresidual` (`residual=False`: each layer's
output replaces its input), `outreadout` (`readout_pool='output'`: the readout reads the output
neuron's vector alone), `deg` (`avg_log_degree` 2.247, neural graphs' PNA normaliser for this
SIREN instead of the task's 1.0), `torchinit` (every dense kernel drawn sqrt(3) smaller, as
torch's default `Linear`), `amsgrad` (AdamW with AMSGrad); session 12's: `ngaug` (neural
graphs' augmentation instead of ours: `perturb_inr`, no permutations, no sign flips),
`perturb` (`perturb_inr` before our symmetries), `revfourier` (neural graphs' edge encoding
with reversed edge features: (w, 0, w) and (0, w, w) through 128 Gaussian frequencies of scale
3 is, per direction, 128 frequencies of scale 3 sqrt 2; here one edge vector for both
directions, the value itself kept, and the biases' frequencies at the same scale where neural
graphs' are at 3), `noedgeembed` (the edges' type, layer, operation and activation embeddings
zero and frozen: neural graphs' edges carry their value alone; its nodes carry one embedding
per input and output neuron and per hidden layer, which ours span too), `readout3` (the
readout MLP with two hidden layers of 32, neural graphs' shape; our activation); `mlp`,
`statnn`, `deepsets`: that baseline as the task builds it instead of NG-GNN (with `noaug`
the flat MLP trains as in the task); `dsgain=X`: DeepSets' pooled vector scaled up at most X
times (the task's 10). `--linear-probe dataset` instead measures what the untrained NG-GNN's pooled vectors carry
(logistic regressions on them; `dataset:gmn` for GMN). Host-side driver; minutes per variant
on 2 cores.
"""

import argparse
import dataclasses
import pathlib
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gmn_jax.tasks.inr_classification import (InrClassificationConfig, build_model,
                                              encode_inr_zoo, split_by_image)
from gmn_jax.tasks.inr_classification.augment import perturb_inr
from gmn_jax.tasks.inr_classification import run as inr_run
from gmn_jax.tasks.inr_classification.run import FOURIER_FREQUENCIES, FOURIER_SCALE
from gmn_jax.training.fit import init_params
from gmn_jax.zoos.inr import zoo as inr_zoo

CHANGES = ('graph', 'dataset', 'none', 'noflip', 'noaug', 'fourier', 'constant', 'gmn',
           'stdreadout', 'lnreadout', 'readoutonly', 'smallembed', 'graphnorm', 'nonorm',
           'noresidual', 'outreadout', 'torchinit', 'amsgrad', 'deg', 'ngaug', 'perturb',
           'revfourier', 'noedgeembed', 'readout3', 'mlp', 'statnn', 'deepsets')


# mean(log(d + 1)) over the forward in-degree histogram of a 2-32-32-1 MLP, as neural graphs'
# `GNNForClassification` builds it: (2 log 1 + 32 log 3 + 33 log 33) / 67.
OFFICIAL_AVG_LOG_DEGREE = float((32 * np.log(3) + 33 * np.log(33)) / 67)


def _readout_input(model, params, transform):
  """`model.apply` with the readout MLP's input (the pooled vectors) passed through
  `transform` (None: unchanged), and that input returned too."""
  def apply(p, g):
    box = []

    def intercept(f, args, kwargs, context):
      if context.module.name == 'graph_mlp' and context.method_name == '__call__':
        x = args[0] if transform is None else transform(args[0])
        box.append(x)
        return f(x, *args[1:], **kwargs)
      return f(*args, **kwargs)
    with nn.intercept_methods(intercept):
      out = model.apply(p, g).globals
    return out, box[0] if box else None  # baselines have no `graph_mlp`
  return apply


def run_variant(variant: str, zoo, graphs, split, epochs: int, seed: int, window: int) -> dict:
  changes = variant.split(',')
  lr = [float(c[3:]) for c in changes if c.startswith('lr=')]
  gain = [float(c[7:]) for c in changes if c.startswith('dsgain=')]
  changes = [c for c in changes if not c.startswith(('lr=', 'dsgain='))]
  # DeepSets' pooled-vector gain cap (`run.DEEPSETS_MIN_STD` = 1 / gain), read by build_model
  inr_run.DEEPSETS_MIN_STD = 1.0 / gain[0] if gain else 0.1
  unknown = set(changes) - set(CHANGES)
  if unknown:
    raise SystemExit(f'unknown changes {sorted(unknown)}; choose from {CHANGES}')
  normalization = next((c for c in changes if c in ('graph', 'dataset', 'none')), 'graph')
  config = InrClassificationConfig(normalization=normalization,
                                   standardize_readout='stdreadout' in changes,
                                   readout_pool='output' if 'outreadout' in changes else 'all',
                                   value_encoding='octaves')  # the base: `revfourier` changes it
  config = dataclasses.replace(config, train=dataclasses.replace(
      config.train, seed=seed, **({'learning_rate': lr[0]} if lr else {})))
  train, val, test = split
  name = next((c for c in ('gmn', 'mlp', 'statnn', 'deepsets') if c in changes), 'nggnn')
  model = build_model(name, config, graphs, zoo.config, zoo.num_classes, train)
  if 'fourier' in changes:
    model = model.clone(value_features='fourier', n_frequencies=128, value_scale=3.0)
  if 'revfourier' in changes:
    model = model.clone(value_features='fourier', n_frequencies=FOURIER_FREQUENCIES,
                        value_scale=FOURIER_SCALE)  # the task's value_encoding='fourier'
  if 'readout3' in changes:
    model = model.clone(readout_depth=2, readout_hidden=32)
  structure = {}
  if 'graphnorm' in changes:
    structure['norm'] = 'graph'
  if 'nonorm' in changes:
    structure['norm'] = 'none'
  if 'noresidual' in changes:
    structure['residual'] = False
  if 'deg' in changes:  # neural graphs' PNA normaliser for this SIREN (2-32-32-1)
    structure['avg_log_degree'] = OFFICIAL_AVG_LOG_DEGREE
  if structure:
    model = model.clone(**structure)
    if 'stdreadout' in changes:
      raise SystemExit('fourier with stdreadout: the statistics are of the other encoding')
  tc = config.train
  budget = graphs.budget(tc.batch_size)
  steps = epochs * -(-len(train) // tc.batch_size)
  warmup = max(1, int(tc.warmup_fraction * steps))
  if 'constant' in changes:
    schedule = optax.join_schedules([optax.linear_schedule(0.0, tc.learning_rate, warmup),
                                     optax.constant_schedule(tc.learning_rate)], [warmup])
  else:  # the task's own (`fit`)
    schedule = optax.warmup_cosine_decay_schedule(0.0, tc.learning_rate, warmup, max(steps, 2))
  if 'amsgrad' in changes:  # torch's AdamW(amsgrad=True), as neural graphs
    tx = optax.chain(optax.clip_by_global_norm(tc.clip_norm), optax.scale_by_amsgrad(),
                     optax.add_decayed_weights(tc.weight_decay),
                     optax.scale_by_learning_rate(schedule))
  else:
    tx = optax.chain(optax.clip_by_global_norm(tc.clip_norm),
                     optax.adamw(schedule, weight_decay=tc.weight_decay))
  first = next(graphs.batches(train[:1], tc.batch_size, budget))[0]
  params = init_params(model, jax.random.key(seed), first)
  if 'smallembed' in changes:  # the encoder's type, layer, position and op embeddings / 10
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x / 10 if 'embedding' in jax.tree_util.keystr(path) else x, params)
  if 'torchinit' in changes:  # torch's Linear: U(+-1/sqrt(fan_in)), variance 1/3 of lecun
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x / np.sqrt(3) if jax.tree_util.keystr(path).endswith("'kernel']")
        else x, params)
  frozen = lambda key: 'readoutonly' in changes and 'readout' not in key or (
      'noedgeembed' in changes and 'encoder' in key and "'edge_" in key
      and 'edge_weight' not in key)
  if 'noedgeembed' in changes:
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: 0 * x if frozen(jax.tree_util.keystr(path)) else x, params)
  if 'noedgeembed' in changes and not any(
      frozen(jax.tree_util.keystr(path)) for path, _ in
      jax.tree_util.tree_flatten_with_path(params)[0]):
    raise SystemExit('noedgeembed: no edge embedding found in the parameters')
  opt_state = tx.init(params)
  transform = None  # 'stdreadout': the task's `standardize_readout`, in `build_model`
  if 'lnreadout' in changes:  # per graph, over the pooled features (no statistics)
    transform = lambda x: (x - x.mean(-1, keepdims=True)) / (x.std(-1, keepdims=True) + 1e-6)
  forward = _readout_input(model, params, transform)

  @jax.jit
  def step(params, opt_state, g, y, mask):
    def loss_fn(p):
      err = optax.softmax_cross_entropy_with_integer_labels(forward(p, g)[0],
                                                            y.astype(jnp.int32))
      return jnp.sum(jnp.where(mask, err, 0.0)) / jnp.maximum(mask.sum(), 1)
    loss, grads = jax.value_and_grad(loss_fn)(params)
    grads = jax.tree_util.tree_map_with_path(
        lambda path, x: 0 * x if frozen(jax.tree_util.keystr(path)) else x, grads)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  logits_fn = jax.jit(lambda p, g: forward(p, g)[0])
  symmetries = 'noaug' not in changes and 'ngaug' not in changes
  perturb = perturb_inr if 'ngaug' in changes or 'perturb' in changes else None
  max_scale = 1.0 if 'noflip' in changes or not symmetries else tc.max_scale
  losses, tic = [], time.time()
  for epoch in range(epochs):
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(train)
    for g, y, mask in graphs.batches(order, tc.batch_size, budget,
                                     rng if symmetries or perturb else None, max_scale,
                                     perturb=perturb, permute=symmetries):
      params, opt_state, loss = step(params, opt_state, g, y, mask)
      losses.append(float(loss))

  def accuracy(rows):
    preds = np.concatenate([np.asarray(logits_fn(params, g))[m].argmax(1)
                            for g, _, m in graphs.batches(rows, tc.batch_size, budget)])
    return float(np.mean(preds == graphs.targets[rows]))

  windows = [float(np.mean(losses[k:k + window])) for k in range(0, len(losses), window)]
  return {'variant': variant, 'seed': seed, 'steps': len(losses), 'loss_windows': windows,
          'loss_mean': float(np.mean(losses)), 'val': accuracy(val), 'test': accuracy(test),
          'train_accuracy_1000': accuracy(train[:1000]), 'seconds': time.time() - tic}


def linear_probes(zoo, graphs, split, normalization: str, name: str = 'nggnn') -> str:
  """What an untrained metanetwork's pooled vectors carry: logistic regressions on them (and
  on 18 per-layer statistics of the raw weights), fitted by L-BFGS and by one or ten epochs
  of Adam 3e-3 at batch 32 (the metanetwork's own budget), standardised or raw."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  train, _, test = split
  y = graphs.targets.astype(int)
  layers = [np.asarray(leaf).reshape(len(zoo), -1) for leaf in jax.tree.leaves(zoo.params)]
  stats = np.stack([f(a) for a in layers for f in (lambda a: a.mean(1), lambda a: a.std(1),
                                                   lambda a: np.linalg.norm(a, axis=1))], 1)
  config = InrClassificationConfig(normalization=normalization, readout_pool='all')
  model = build_model(name, config, graphs, zoo.config, zoo.num_classes, train)
  budget = graphs.budget(64)
  params = init_params(model, jax.random.key(0), next(graphs.batches(train[:1], 64, budget))[0])
  fn = jax.jit(_readout_input(model, params, None))
  feats = lambda rows: np.concatenate([np.asarray(fn(params, g)[1])[m]
                                       for g, _, m in graphs.batches(rows, 64, budget)])
  ptr, pte = feats(train), feats(test)
  used = ptr.std(0) > 0
  ratio = np.median(ptr.std(0)[used] / np.sqrt((ptr[:, used] ** 2).mean(0)))

  def standardised(a, b):
    mean, std = a.mean(0), np.where(a.std(0) > 0, a.std(0), 1.0)
    return (a - mean) / std, (b - mean) / std

  def lbfgs(a, b):
    clf = LogisticRegression(max_iter=3000).fit(a, y[train])
    return clf.score(b, y[test])

  def adam(a, b, epochs):
    tx = optax.adam(3e-3)
    p = (jnp.zeros((a.shape[1], 10)), jnp.zeros(10))
    state = tx.init(p)

    @jax.jit
    def step(p, state, xb, yb):
      loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(xb @ p[0] + p[1],
                                                                       yb).mean()
      updates, state = tx.update(jax.grad(loss)(p), state)
      return optax.apply_updates(p, updates), state
    rng = np.random.default_rng(0)
    for _ in range(epochs):
      order = rng.permutation(len(a))
      for k in range(0, len(a), 32):
        p, state = step(p, state, a[order[k:k + 32]], y[train][order[k:k + 32]])
    return float(np.mean((b @ np.asarray(p[0]) + np.asarray(p[1])).argmax(1) == y[test]))

  s_tr, s_te = standardised(ptr, pte)
  layer_stats = lbfgs(*standardised(stats[train], stats[test]))
  return (f'{name}, {normalization}, untrained: pooled vectors vary across INRs by a median '
          f'{ratio:.2f} of their size; logistic regression test accuracy: per-layer statistics '
          f'of the raw weights (L-BFGS) {100 * layer_stats:.1f}%; pooled vectors standardised '
          f'L-BFGS {100 * lbfgs(s_tr, s_te):.1f}%, Adam 1 epoch standardised '
          f'{100 * adam(s_tr, s_te, 1):.1f}% / raw {100 * adam(ptr, pte, 1):.1f}%, 10 epochs '
          f'{100 * adam(s_tr, s_te, 10):.1f}% / {100 * adam(ptr, pte, 10):.1f}%')


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('workdir', help='an INR classification work directory (its zoo)')
  parser.add_argument('--variant', action='append', default=[])
  parser.add_argument('--linear-probe', action='append', default=[],
                      metavar='NORMALIZATION[:METHOD]',
                      help="e.g. dataset:gmn: what the untrained model's pooled vectors carry")
  parser.add_argument('--epochs', type=int, default=1)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--window', type=int, default=22)
  args = parser.parse_args()
  zoo = inr_zoo.load_inr_zoo(pathlib.Path(args.workdir) / 'zoo')
  graphs = encode_inr_zoo(zoo)
  split = split_by_image(InrClassificationConfig(), zoo)
  print(f'{len(split[0])} / {len(split[1])} / {len(split[2])} INRs; ln 10 = {np.log(10):.3f}',
        flush=True)
  for probe in args.linear_probe:
    print(linear_probes(zoo, graphs, split, *probe.split(':')), flush=True)
  for variant in args.variant:
    r = run_variant(variant, zoo, graphs, split, args.epochs, args.seed, args.window)
    print(f"{r['variant']:24s} seed {r['seed']}: training loss by {args.window} steps "
          f"{' '.join(f'{x:.3f}' for x in r['loss_windows'])} (mean {r['loss_mean']:.3f}); "
          f"training accuracy (first 1000, after) {100 * r['train_accuracy_1000']:.1f}%, "
          f"val {100 * r['val']:.1f}%, test {100 * r['test']:.1f}%; {r['seconds']:.0f} s",
          flush=True)


if __name__ == '__main__':
  main()

"""Metanetworks (GMN, NG-GNN, NG-T) and baselines: symmetry, padding, batching, decoding.

Corner cases covered:
- every architecture family the tracer supports (MLP, CNN, CNN+BN, ResNet, transformer,
  embedding model), each with a random symmetry and a non-symmetry (negative twin);
- a batch of three architectures with different K and P, padded to two budgets, reordered,
  and with different batch-mates;
- a single-edge graph whose per-neuron parameter groups are all empty, 0-node padding graphs;
- jit against no jit; a training loop over batches of different sizes compiles once.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import optax
import pytest

import gmn_jax
import gmn_jax.testing as gt
from tests.support import tiny_metanets as metanets

METANETWORKS = ('gmn', 'nggnn', 'ngt')
MIXED = ('mlp', 'cnn_bn', 'vit')  # K = 1, 9, 4 and P = 1, 5, 7


@functools.lru_cache(maxsize=None)
def _single_graph_model(family: str, net: str):
  """`(model, params)`: a tiny `net` with random parameters for one graph of `family`."""
  pg, variables = metanets.case(metanets.FAMILIES[family])
  model = metanets.tiny(net, edge_readout='direct') if net != 'statnn' else metanets.tiny(net)
  return model, metanets.random_params(model, pg.encode(variables))


@functools.lru_cache(maxsize=None)
def _single_graph_fn(family: str, net: str):
  pg, variables = metanets.case(metanets.FAMILIES[family])
  model, params = _single_graph_model(family, net)
  return pg, variables, jax.jit(lambda g: model.apply(params, g))


# Every family with every metanetwork; GMN variants (PNA aggregation with globals; forward-only
# messages with sum and max) on a few.
SYMMETRY_CASES = [(f, n) for f in metanets.FAMILIES for n in METANETWORKS] + [
    ('cnn_bn', 'gmn_pna'), ('transformer', 'gmn_pna'), ('resnet', 'gmn_forward')]


@pytest.mark.parametrize('family,net', SYMMETRY_CASES)
def test_symmetry(family, net):
  """Invariant globals and equivariant per-node/per-edge/decoded outputs under random
  symmetries; a non-symmetry changes them (the negative twins)."""
  pg, variables, fn = _single_graph_fn(family, net)
  gt.assert_invariant(fn, pg, variables, jax.random.key(0), n=2)
  gt.assert_equivariant(fn, pg, variables, jax.random.key(1), n=2)
  # Negative twins: swapping two input (or output) neurons is not a symmetry; swapping two
  # hidden neurons' incoming weights only is not either, and equivariant outputs see it.
  gt.assert_not_invariant(fn, pg, variables, 0, kind='auto')
  gt.assert_not_equivariant(fn, pg, variables, 0, kind='incoming')


@pytest.mark.parametrize('family', ['cnn_bn', 'transformer'])
def test_baselines_are_invariant(family):
  pg, variables = metanets.case(metanets.FAMILIES[family])
  for net in ('deepsets', 'statnn'):
    _, _, fn = _single_graph_fn(family, net)
    gt.assert_invariant(fn, pg, variables, 3, n=2)
  _, _, deepsets = _single_graph_fn(family, 'deepsets')
  gt.assert_equivariant(deepsets, pg, variables, 4, n=2)
  # DeepSets sees output positions; StatNN sees only per-layer statistics, so its negative
  # twin changes a value rather than permuting values.
  gt.assert_not_invariant(deepsets, pg, variables, 0, kind='outputs')
  _, _, statnn = _single_graph_fn(family, 'statnn')
  g = pg.encode(variables)
  w = np.array(g.edges['weight'])
  w[np.argmax(np.asarray(g.edges['mask'])[:, 0])] *= 3
  changed = statnn(g._replace(edges={**g.edges, 'weight': w})).globals
  assert not np.allclose(changed, statnn(g).globals, atol=1e-5)


# ---- batches of several architectures ------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _mixed():
  """Graphs of three architectures (two parameter sets each) and two budgets."""
  graphs, templates = [], []
  for name in MIXED:
    pg, variables = metanets.case(name)
    g = pg.encode(variables)
    other = g._replace(edges={**g.edges, 'weight': g.edges['weight'] * 0.5 + 0.01
                              * g.edges['mask']})
    graphs += [g, other]
    templates += [pg, pg]
  small = gmn_jax.budget_for(templates, batch_size=len(graphs))
  large = small._replace(n_node=small.n_node + 37, n_edge=small.n_edge + 50,
                         n_graph=small.n_graph + 3, kernel_size=small.kernel_size + 2,
                         param_size=small.param_size + 1)
  return graphs, templates, small, large


@functools.lru_cache(maxsize=None)
def _mixed_fn(net: str):
  graphs, _, _, large = _mixed()
  model = metanets.tiny(net)
  # Initialised on the widest padding, so that every budget's K and P fit.
  params = metanets.random_params(model, gmn_jax.batch(graphs, large))
  return model, params, jax.jit(model.apply)


def _real_outputs(out):
  return [(g.globals, g.edges['weight'], g.nodes['param'], g.edges['hidden'],
           g.nodes['hidden']) for g in gmn_jax.unbatch(out)]


def _assert_same(a, b, atol=1e-5):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
    np.testing.assert_allclose(x, y, atol=atol, rtol=1e-5)


@pytest.mark.parametrize('net', METANETWORKS)
def test_batches_of_several_architectures(net):
  """On a batch of three architectures (different K and P):

  - a graph's outputs do not depend on the padding budget (nodes, edges, graphs, K, P), on
    its batch-mates, or on the order of the graphs in the batch;
  - with gamma = 0 the residual readout is the identity, and decoding each graph of the
    output gives back its parameters exactly, biases and norm statistics included.
  """
  graphs, templates, small, large = _mixed()
  _, params, apply = _mixed_fn(net)
  reference = _real_outputs(apply(params, gmn_jax.batch(graphs, small)))
  assert len(reference) == len(graphs)
  _assert_same(_real_outputs(apply(params, gmn_jax.batch(graphs, large))), reference)
  order = [3, 0, 5, 2, 4, 1]
  shuffled = _real_outputs(apply(params, gmn_jax.batch([graphs[i] for i in order], small)))
  _assert_same(shuffled, [reference[i] for i in order])
  alone = _real_outputs(apply(params, gmn_jax.batch(graphs[:1], small)))
  _assert_same(alone, reference[:1])

  identity = jax.tree_util.tree_map_with_path(
      lambda path, x: np.zeros_like(x) if getattr(path[-1], 'key', '') == 'gamma' else x,
      params)
  out = gmn_jax.unbatch(apply(identity, gmn_jax.batch(graphs, small)))
  for g, pg, got in zip(graphs, templates, out, strict=True):
    for x, y in zip(jax.tree_util.tree_leaves(pg.decode(got)),
                    jax.tree_util.tree_leaves(pg.decode(g)), strict=True):
      np.testing.assert_array_equal(x, y)


def test_per_parameter_outputs_land_on_their_parameters():
  """Changing one hidden neuron's bias changes the decoded output of that bias most (the
  node readout reads each neuron's own vector, not, e.g., an input neuron's)."""
  pg, variables = metanets.case('mlp')
  model = metanets.tiny('gmn', edge_readout='direct', num_layers=0)
  g = pg.encode(variables)
  params = metanets.random_params(model, g)
  apply = jax.jit(model.apply)
  bias = variables['params']['Dense_1']['bias']
  changed = jax.tree_util.tree_map(lambda x: x, variables)
  changed['params']['Dense_1']['bias'] = bias.at[2].add(1.0)
  before = pg.decode(apply(params, g))['params']['Dense_1']['bias']
  after = pg.decode(apply(params, pg.encode(changed)))['params']['Dense_1']['bias']
  moved = np.abs(np.asarray(after - before))
  assert moved.argmax() == 2 and moved[2] > 0 and np.all(np.delete(moved, 2) == 0)


@pytest.mark.slow  # ~50 s; jit itself is exercised by every other test
def test_jit_matches_no_jit():
  """One test for all three (in one process, the eager op cache is shared). The jitted side
  is test_symmetry's program for the MLP, already compiled when that test ran first."""
  pg, variables = metanets.case('mlp')
  g = pg.encode(variables)
  for net in METANETWORKS:
    model, params = _single_graph_model('mlp', net)
    jitted = _single_graph_fn('mlp', net)[2](g)
    with jax.disable_jit():
      eager = model.apply(params, g)
    _assert_same((eager.globals, eager.edges['weight'], eager.nodes['param']),
                 (jitted.globals, jitted.edges['weight'], jitted.nodes['param']))


@pytest.mark.parametrize('net', ('gmn_pna', 'nggnn', 'ngt', 'statnn'))
def test_gradients_are_finite_on_corner_cases(net):
  """A single-edge graph with no per-neuron parameters (empty parameter groups, nodes with no
  incoming messages) batched with a normal graph and 0-node padding graphs."""
  pg1, v1 = metanets.single_edge()
  pg2, v2 = metanets.case('mlp')
  graphs = [pg1.encode(v1), pg2.encode(v2)]
  budget = gmn_jax.Budget(n_node=40, n_edge=64, n_graph=6, kernel_size=2, param_size=2)
  batch = gmn_jax.batch(graphs, budget)
  assert batch.n_node.tolist() == [2, 15, 23, 0, 0, 0]
  model = metanets.tiny(net)
  params = metanets.random_params(model, batch)

  def loss(p):
    out = model.apply(p, batch)
    total = jnp.sum(out.globals ** 2)  # padding graphs included: they must stay finite too
    if net != 'statnn':
      total += jnp.sum(out.edges['weight'] ** 2) + jnp.sum(out.nodes['param'] ** 2)
    return total

  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  assert np.isfinite(value)
  for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
    assert np.all(np.isfinite(leaf)), jax.tree_util.keystr(path)


@pytest.mark.slow  # ~25 s of training steps
def test_training_loop_compiles_once():
  """Batches of 3, 1 and 2 graphs of several architectures, padded to one budget: the train
  step (loss, gradient and optax update in one jit) is traced exactly once."""
  graphs, templates, _, _ = _mixed()
  budget = gmn_jax.budget_for(templates, batch_size=3)
  model = metanets.tiny('gmn')
  params = metanets.random_params(model, gmn_jax.batch(graphs[:3], budget))
  tx = optax.adamw(1e-3)
  traces = []

  @jax.jit
  def step(params, opt_state, graphs, targets):
    traces.append(1)

    def loss_fn(p):
      pred = model.apply(p, graphs).globals[:, 0]
      mask = gmn_jax.graph_mask(graphs)
      return jnp.sum(jnp.where(mask, (pred - targets) ** 2, 0)) / jnp.sum(mask)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  opt_state = tx.init(params)
  losses = []
  for chunk in ([0, 2, 4], [5], [1, 3]):
    batch = gmn_jax.batch([graphs[i] for i in chunk], budget)
    targets = np.zeros(budget.n_graph, np.float32)
    targets[:len(chunk)] = 1.0
    params, opt_state, loss = step(params, opt_state, batch, targets)
    losses.append(float(loss))
  assert len(traces) == 1
  assert np.all(np.isfinite(losses))


# ---- the public contract ---------------------------------------------------------------------


@pytest.mark.slow  # the default (full) sizes: ~20 s each
@pytest.mark.parametrize('cls', [gmn_jax.GMN, gmn_jax.NGGNN, gmn_jax.NGT])
def test_default_construction_on_a_plain_jraph_batch(cls):
  """`cls()` with `init(key, jraph.batch([...]))` and `apply(params, graphs)` on unpadded
  graphs of one architecture from `pg.encode` (globals None).

  `init` is traced (`jax.eval_shape`) rather than compiled: XLA compiles one random-number
  generator per parameter, ~10 s per default-sized model on CPU. `test_init_runs` runs it.
  """
  pg, variables = metanets.case('cnn_gap')
  g = pg.encode(variables)
  graphs = jraph.batch([g, g._replace(edges={**g.edges, 'weight': -g.edges['weight']})])
  model = cls()
  shapes = jax.eval_shape(model.init, jax.random.key(0), graphs)
  params = metanets.random_params(model, graphs)
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(shapes)
  out = jax.jit(model.apply)(params, graphs)
  assert isinstance(out, jraph.GraphsTuple)
  assert out.globals.shape == (2, 1)
  assert np.all(np.isfinite(out.globals))
  assert not np.allclose(out.globals[0], out.globals[1])
  assert out.edges['weight'].shape == (2 * pg.n_edge, pg.kernel_size)
  decoded = pg.decode(jraph.unbatch(out)[0])
  assert jax.tree_util.tree_structure(decoded) == jax.tree_util.tree_structure(variables)


@pytest.mark.parametrize('net', METANETWORKS)
def test_init_runs(net):
  """The real `init` (jitted, with a fast-compiling key type) gives finite parameters of the
  traced shapes, and the residual readout starts as the identity."""
  pg, variables = metanets.case('cnn_bn')
  g = pg.encode(variables)
  model = metanets.tiny(net)
  key = jax.random.key(0, impl='unsafe_rbg')
  params = jax.jit(model.init)(key, g)
  shapes = jax.eval_shape(model.init, key, g)
  assert jax.tree_util.tree_map(np.shape, params) == jax.tree_util.tree_map(
      lambda s: s.shape, shapes)
  assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(params))
  np.testing.assert_array_equal(params['params']['readout']['gamma'], [0.0, 0.0])


def test_presets_have_the_published_sizes():
  assert gmn_jax.NGGNN().hidden_dim == 32
  assert gmn_jax.NGGNN.preset('small_cnn_zoo').hidden_dim == 256
  inr = gmn_jax.NGT.preset('inr')
  assert (inr.node_dim, inr.edge_dim, inr.num_layers, inr.num_heads) == (64, 32, 4, 8)
  cnn = gmn_jax.NGT.preset('small_cnn_zoo')
  assert (cnn.node_dim, cnn.edge_dim, cnn.ffn_dim, cnn.num_layers, cnn.num_heads) == (
      128, 64, 256, 4, 8)
  with pytest.raises(ValueError, match='unknown NG-T preset'):
    gmn_jax.NGT.preset('nope')


def test_weight_mlp_reads_one_architecture_only():
  pg, variables = metanets.case('mlp')
  other_pg, other_variables = metanets.case('siren')  # K = P = 1 too, more nodes and edges
  wide_pg, wide_variables = metanets.case('cnn_gap')  # K = 9
  g, other = pg.encode(variables), other_pg.encode(other_variables)
  fixed = gmn_jax.WeightMLP.for_architecture(pg, hidden=(8,))
  params = metanets.random_params(fixed, g)
  # Without n_node/n_edge it takes the first graph's sizes (outside jit).
  model = gmn_jax.WeightMLP(hidden=(8,))
  with pytest.raises(ValueError, match='one architecture only'):
    model.apply(params, gmn_jax.batch([g, other]))
  with pytest.raises(ValueError, match='initialised for an architecture'):
    model.apply(params, gmn_jax.batch([wide_pg.encode(wide_variables)]))
  # Under jit the sizes are traced: the other architecture's row is NaN instead.
  budget = gmn_jax.budget_for([pg, other_pg], 2)
  out = jax.jit(fixed.apply)(params, gmn_jax.batch([g, other], budget))
  assert out.globals.shape == (3, 1)
  assert np.isfinite(out.globals[0]).all() and np.isnan(out.globals[1]).all()


@pytest.mark.slow  # 14-24 s: keeps the fast tier within its 10 minutes
def test_standardised_inputs_are_the_raw_model_on_standardised_values():
  """`input_mean`/`input_std` standardise WeightMLP's flat vector entry by entry (in
  `flat_parameters`' order) and StatNN's statistics; a constant column is kept finite."""
  from gmn_jax.metanets.baselines import flat_parameters, standardization
  pg, variables = metanets.case('mlp')
  scaled = [jax.tree.map(lambda a, s=s: a * s + 0.1 * s, variables) for s in (0.5, 1.0, 3.0)]
  stacked = jax.tree.map(lambda *a: np.stack(a), *[pg.encode(v) for v in scaled])
  flat = flat_parameters(stacked)
  assert flat.shape == (3, pg.n_edge * stacked.edges['weight'].shape[-1]
                        + pg.n_node * stacked.nodes['param'].shape[-1])
  mean, std = standardization(flat)
  constant = np.flatnonzero(flat.std(0) == 0)
  assert constant.size and (std[constant] == 1).all()  # input neurons' empty param slots
  graphs = gmn_jax.batch([pg.encode(v) for v in scaled])
  raw = gmn_jax.WeightMLP.for_architecture(pg, hidden=(8,))
  params = metanets.random_params(raw, graphs)
  out = raw.clone(input_mean=mean, input_std=std).apply(params, graphs).globals
  # The same MLP on the standardised flat vectors, applied by hand.
  p = params['params']
  x = jax.nn.relu(((flat - mean) / std) @ p['input_kernel'] + p['input_bias'])
  assert not np.allclose(out, raw.apply(params, graphs).globals, atol=1e-3)  # raw input
  head = p['mlp']
  layer = head[sorted(head)[0]]
  np.testing.assert_allclose(out[:3, 0], (x @ layer['kernel'] + layer['bias'])[:, 0],
                             rtol=1e-5, atol=1e-5)
  stat = gmn_jax.StatNN(hidden=(8,))
  feats = np.asarray(stat.features(graphs))[:3]  # the 3 real graphs, not the padding
  f_mean, f_std = standardization(feats)
  stat_params = metanets.random_params(stat, graphs)
  shifted = stat.clone(input_mean=f_mean, input_std=f_std).apply(stat_params, graphs).globals
  assert np.isfinite(shifted).all()
  assert not np.allclose(shifted, stat.apply(stat_params, graphs).globals, atol=1e-3)

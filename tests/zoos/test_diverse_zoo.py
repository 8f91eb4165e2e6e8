"""The diverse zoo: each family traces to a graph with the library's guarantees (exact round
trip, symmetry, negative control), all families share one padded batch, and a zoo on disk is
checksummed, resumed and refused when corrupt or of another config."""

import dataclasses
import functools
import os

import jax
import numpy as np
import pytest

import gmn_jax
from gmn_jax import testing
from gmn_jax.metanets.batching import batch, budget_for, unbatch
from gmn_jax.metanets.gmn import GMN
from gmn_jax.zoos import ZooError
from gmn_jax.zoos.diverse.models import DiverseNet, NetSpec
from gmn_jax.zoos.diverse.zoo import (DiverseZooConfig, generate_diverse_zoo, load_diverse_zoo,
                                      sample_members)

# One spec per family (and per cnn norm); small, so that tracing takes a second each.
SPECS = (NetSpec('mlp', 4, 2), NetSpec('cnn', 4, 2, 'batch'), NetSpec('cnn', 4, 1, 'group'),
         NetSpec('cnn', 4, 1), NetSpec('cnn1d', 4, 2, kernel=5), NetSpec('deepsets', 4, 2),
         NetSpec('resnet', 4, 1), NetSpec('vit', 4, 1, heads=2))
X = np.random.default_rng(0).standard_normal((3, 8, 8, 1)).astype(np.float32)


@functools.cache
def _traced(spec: NetSpec, activation: str = 'relu'):
  """(model, variables, graph): variables randomised (BatchNorm statistics and norm scales
  too) so that no two hidden neurons are equal by accident."""
  model = DiverseNet(spec, activation=activation)
  v = model.init(jax.random.key(1), X[:1])
  rng = np.random.default_rng(2)
  v = jax.tree.map(lambda a: np.asarray(a + 0.3 * rng.standard_normal(a.shape), np.float32), v)
  if 'batch_stats' in v:
    v['batch_stats'] = jax.tree.map(np.abs, v['batch_stats'])  # variances must stay positive
  return model, v, gmn_jax.trace(model, v, X[:1])


@pytest.mark.parametrize('spec', SPECS, ids=lambda s: s.name)
def test_family_round_trip_symmetry_and_negative_control(spec):
  model, v, pg = _traced(spec, 'tanh' if spec.family == 'deepsets' else 'relu')
  decoded = pg.decode(pg.encode(v))
  assert jax.tree.structure(decoded) == jax.tree.structure(v)
  for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(decoded)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  fn = lambda g: model.apply(pg.decode(g), X)
  testing.assert_invariant(fn, pg, v, key=0, atol=1e-4, rtol=1e-4)
  testing.assert_not_invariant(fn, pg, v, key=0, atol=1e-4, rtol=1e-4)


@pytest.mark.slow  # ~30 s; each family round trip and symmetry stays fast
def test_one_batch_holds_every_family_and_mixing_changes_no_output():
  graphs = [jax.device_get(_traced(s)[2].encode(_traced(s)[1])) for s in SPECS]
  budget = budget_for(graphs, len(graphs))
  mixed = batch(graphs, budget)
  model = GMN(node_dim=8, edge_dim=8, num_layers=2, readout_hidden=8,
              max_kernel_size=budget.kernel_size, max_param_size=budget.param_size)
  params = model.init(jax.random.key(0), mixed)
  apply = jax.jit(model.apply)
  together = np.asarray(apply(params, mixed).globals[:len(graphs), 0])
  alone = [float(apply(params, batch([g], budget)).globals[0, 0]) for g in graphs]
  np.testing.assert_allclose(together, alone, rtol=1e-4, atol=1e-5)
  assert len(unbatch(mixed)) >= len(graphs)
  assert len(set(np.round(together, 5).tolist())) == len(graphs)  # families are told apart


def test_sampled_members_cover_the_config():
  config = DiverseZooConfig(num_members=300)
  specs, hparams = sample_members(config)
  assert {s.family for s in specs} == set(config.families)
  assert {s.norm for s in specs if s.family == 'cnn'} == set(config.norms)
  assert all(s.hidden % s.heads == 0 for s in specs if s.family == 'vit')
  assert set(hparams['optimizer']) == {'adam', 'sgd'}
  assert hparams['epochs'].min() >= config.epochs[0] and hparams['epochs'].max() <= config.epochs[1]
  with pytest.raises(ValueError, match='families'):
    DiverseZooConfig(families=('transformer',))
  with pytest.raises(ValueError, match='activations'):
    DiverseZooConfig(activations=('gelu',))
  assert set(sample_members(DiverseZooConfig(activations=('relu',)))[1]['activation']) == {'relu'}


def test_zoo_resumes_refuses_corrupt_shards_and_other_configs(tmp_path):
  config = DiverseZooConfig(families=('mlp',), hidden=(4,), depths=(1,), num_members=12,
                            shard_size=6, epochs=(1, 2), max_train=128, max_test=64)
  zoo = generate_diverse_zoo(config, tmp_path, progress=False)
  assert len(zoo) == 12 and len(zoo.groups) == 1
  table = zoo.table()
  assert np.ptp(table['test_accuracy']) > 0.05  # sampled training spreads the accuracies
  first = load_diverse_zoo(tmp_path).groups[0].variables
  kept = (tmp_path / 'shard_00000.npz').stat().st_mtime_ns
  npz = tmp_path / 'shard_00001.npz'
  npz.write_bytes(npz.read_bytes()[:-20] + b'x' * 20)
  with pytest.raises(ZooError, match='shard_00001.*checksum'):
    load_diverse_zoo(tmp_path)
  with pytest.warns(UserWarning, match='shard_00001 is refused'):
    again = generate_diverse_zoo(config, tmp_path, progress=False)
  assert (tmp_path / 'shard_00000.npz').stat().st_mtime_ns == kept
  for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again.groups[0].variables)):
    np.testing.assert_array_equal(a, b)  # regenerated bit for bit
  with pytest.raises(ZooError, match='another config'):
    generate_diverse_zoo(dataclasses.replace(config, num_members=13), tmp_path)
  os.remove(tmp_path / 'shard_00000.json')
  with pytest.raises(ZooError, match='shard_00000'):
    load_diverse_zoo(tmp_path)

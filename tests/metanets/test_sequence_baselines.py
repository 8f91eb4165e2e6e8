"""DMC and parameter-DeepSets read every parameter once, ignore padding and batch mates, and
are (DeepSets) or are not (DMC) invariant to the network's symmetries."""

import jax
import numpy as np
import pytest

from gmn_jax import testing
from gmn_jax.metanets.batching import batch, budget_for
from gmn_jax.metanets.sequence_baselines import DMC, ParameterDeepSets, parameter_sequence


@pytest.fixture(scope='module')
def two_families(traced):
  """A CNN with BatchNorm (running statistics as parameters) and a ViT: different lengths."""
  return [traced('cnn_bn'), traced('vit')]


def test_parameter_sequence_holds_every_parameter_once(two_families):
  graphs = [pg.encode(v) for pg, v, _ in two_families]
  budget = budget_for(graphs, 3)
  length = max(sum(np.size(l) for l in jax.tree.leaves(v)) for _, v, _ in two_families) + 5
  values, mask = jax.jit(parameter_sequence, static_argnums=1)(batch(graphs, budget), length)
  for i, (_, v, _) in enumerate(two_families):
    flat = np.concatenate([np.ravel(l) for l in jax.tree.leaves(v)])
    assert mask[i].sum() == flat.size
    np.testing.assert_array_equal(np.sort(values[i][mask[i]]), np.sort(flat))
    assert not np.any(np.asarray(values[i])[~np.asarray(mask[i])])  # zero padding
  assert not mask[2:].any()  # padding graphs hold nothing


@pytest.mark.parametrize('make', [
    pytest.param(lambda n: DMC(max_length=n, channels=(4, 8)), id='dmc',
                 marks=pytest.mark.slow),  # ~30 s
    pytest.param(lambda n: ParameterDeepSets(max_length=n, hidden=8), id='deepsets')])
def test_outputs_do_not_depend_on_batch_mates_or_padding(two_families, make):
  graphs = [pg.encode(v) for pg, v, _ in two_families]
  budget = budget_for(graphs, 4)
  model = make(max(sum(np.size(l) for l in jax.tree.leaves(v)) for _, v, _ in two_families))
  params = model.init(jax.random.key(0), batch(graphs, budget))
  apply = jax.jit(model.apply)
  together = np.asarray(apply(params, batch(graphs, budget)).globals[:2, 0])
  alone = [float(apply(params, batch([g], budget)).globals[0, 0]) for g in graphs]
  np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # ~18 s: builds DMC, whose batch test is slow too
def test_deepsets_sees_values_only_dmc_sees_their_order(traced):
  pg, v, _ = traced('cnn_bn')
  graph = pg.encode(v)
  length = sum(np.size(l) for l in jax.tree.leaves(v))
  deepsets, dmc = ParameterDeepSets(length, hidden=8), DMC(length, channels=(4, 8))
  ds_params = deepsets.init(jax.random.key(0), batch([graph]))
  dmc_params = dmc.init(jax.random.key(0), batch([graph]))
  ds_fn = lambda g: deepsets.apply(ds_params, batch([g])).globals
  dmc_fn = lambda g: dmc.apply(dmc_params, batch([g])).globals
  testing.assert_invariant(ds_fn, pg, v, key=0)
  # Its negative twin: a changed value changes the output. (A non-symmetry only reorders
  # values, which parameter-DeepSets cannot see by design: the paper's weak baseline.)
  edited = jax.tree.map(lambda a: np.asarray(a), v)
  edited['params']['Dense_0']['kernel'] = edited['params']['Dense_0']['kernel'] * 3.0
  assert not np.allclose(ds_fn(graph), ds_fn(pg.encode(edited)), atol=1e-6)
  # DMC reads parameter order: a true symmetry moves its input, so its output moves too.
  with pytest.raises(AssertionError, match='not invariant'):
    testing.assert_invariant(dmc_fn, pg, v, key=0)
  testing.assert_not_invariant(dmc_fn, pg, v, key=0)

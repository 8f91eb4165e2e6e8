"""Position tables that tell neurons apart, in transformers' own Flax models (tiny random
configs from `benchmarks/coverage.py`, nothing downloaded).

- RoFormer multiplies queries and keys by its sinusoidal table through an `einsum` that
  contracts nothing (a `dot_general` with the table, not a `mul`): the table's frequencies
  still tell the head dimensions apart, so random symmetries keep the output. The old
  constraint (frequencies ignored) is refused by the default safety net.
- Called directly with token ids, position ids and masks (no wrapper), Llama, Gemma, Mistral,
  GPT-J (rotary tables gathered by position ids), Marian, Pegasus, XGLM (sinusoidal tables
  gathered by positions) and BigBird's block-sparse attention (masks contracted with masks)
  trace and pass the checks they pass through their wrappers.

Parameters are drawn at a generic scale (`_generic`): at transformers' initial scale on a tiny
width the attention logits are near zero, and a symmetry that scrambles queries and keys
moves the output by only ~1e-5 relative.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

transformers = pytest.importorskip('transformers')  # the `hf` extra

import gmn_jax  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import coverage  # pylint: disable=g-import-not-at-top,wrong-import-position
from gmn_jax.graphs.tracing import contractions  # pylint: disable=g-import-not-at-top,wrong-import-position

_RNG = np.random.default_rng(0)
_IDS = jnp.asarray(_RNG.integers(2, 99, (1, 8)), jnp.int32)
_TOKEN_TYPES = jnp.asarray(_RNG.integers(0, 2, (1, 8)), jnp.int32)


def _generic(variables, seed: int = 1):
  """Parameters with noise at a generic scale: weights of rank >= 2 get N(0, 1/fan in)."""
  rng = np.random.default_rng(seed)

  def noisy(leaf):
    leaf = np.asarray(leaf)
    scale = 1 / np.sqrt(np.prod(leaf.shape[:-1])) if leaf.ndim >= 2 else 0.1
    return jnp.asarray(leaf + scale * rng.standard_normal(leaf.shape), leaf.dtype)
  return jax.tree.map(noisy, variables)


def _relative_change(ref, out) -> float:
  return max(float(jnp.abs(a - b).max() / jnp.abs(a).max()) for a, b in zip(ref, out)
             if jnp.issubdtype(a.dtype, jnp.floating))


def _assert_checks(pg, fn, variables, draws: int = 3, rtol: float = 1e-5):
  """Round trip exact, one slot per scalar, `draws` symmetries keep every float output within
  `rtol` (relative to its largest magnitude) and at least one moves a neuron."""
  for a, b in zip(jax.tree.leaves(pg.decode(pg.encode(variables))), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(a, b)
  assert len(pg.slot_of) == pg.n_params
  assert len(np.unique(pg.slot_of)) == pg.n_params  # no two scalars share a slot
  ref, moved = fn(variables), 0
  for seed in range(draws):
    sym = pg.random_symmetry(seed)
    change = _relative_change(ref, fn(sym.apply(variables)))
    assert change <= rtol, f'symmetry {seed} changes the output by {change:.3g} (relative)'
    moved += int((sym.node_perm != np.arange(pg.n_node)).sum())
  assert moved > 0


def _roformer():
  model = coverage._build('roformer')  # pylint: disable=protected-access
  call = lambda v, ids, types: model(ids, token_type_ids=types, params=v['params'])
  return model, call


def test_roformer_symmetries_keep_its_output():
  model, call = _roformer()
  v = _generic({'params': model.params})
  pg = gmn_jax.trace_function(call, v, _IDS, _TOKEN_TYPES)  # the safety net runs here
  fn = jax.jit(lambda w: jax.tree.leaves(call(w, _IDS, _TOKEN_TYPES)))
  _assert_checks(pg, fn, v, draws=5)


def test_swapping_roformer_rotary_frequencies_changes_its_output():
  """The negative twin: swapping two rotary pairs of one head in both the queries and the keys
  (what the old constraint allowed) is not a symmetry."""
  model, call = _roformer()
  v = _generic({'params': model.params})
  fn = jax.jit(lambda w: jax.tree.leaves(call(w, _IDS, _TOKEN_TYPES)))
  order = np.arange(16)
  order[[0, 1, 2, 3]] = [2, 3, 0, 1]  # head 0's pairs (0, 1) and (2, 3)
  edited = jax.tree.map(np.asarray, v)
  attention = edited['params']['encoder']['layer']['0']['attention']['self']
  for name in ('query', 'key'):
    attention[name]['kernel'] = attention[name]['kernel'][:, order]
    attention[name]['bias'] = attention[name]['bias'][order]
  assert _relative_change(fn(v), fn(edited)) > 1e-3


def test_the_default_safety_net_refuses_roformer_under_the_old_constraint(monkeypatch):
  """With the frequencies of the rotary `einsum` ignored again (the old behaviour), the default
  safety net refuses RoFormer at its own initial parameters, where two draws once passed."""
  model, call = _roformer()
  contract = contractions.ContractionRules.const_contraction

  def ignoring_constants(self, eqn, lhs, rhs):
    self.distinguish_by = lambda *args: None
    try:
      return contract(self, eqn, lhs, rhs)
    finally:
      del self.distinguish_by
  monkeypatch.setattr(contractions.ContractionRules, 'const_contraction', ignoring_constants)
  with pytest.raises(gmn_jax.SymmetryError, match='attention/self'):
    gmn_jax.trace_function(call, {'params': model.params}, _IDS, _TOKEN_TYPES)


_POSITIONS = jnp.broadcast_to(jnp.arange(8, dtype=jnp.int32), (1, 8))
_MASK = jnp.ones((1, 8), jnp.int32)
_DIRECT = {  # family: arguments of its Flax module, as its own code calls it
    'llama': (_IDS, _MASK, _POSITIONS),
    'gemma': (_IDS, _MASK, _POSITIONS),
    'mistral': (_IDS, _MASK, _POSITIONS),
    'gptj': (_IDS, _MASK, _POSITIONS),
    'xglm': (_IDS, _MASK, _POSITIONS),
    'marian': (_IDS, _MASK, _IDS, _MASK, _POSITIONS, _POSITIONS),
    'pegasus': (_IDS, _MASK, _IDS, _MASK, _POSITIONS, _POSITIONS),
}


def _direct(module, v, args):
  pg = gmn_jax.trace(module, v, *args)  # the safety net runs here
  fn = jax.jit(lambda w: jax.tree.leaves(module.apply(w, *args)))
  _assert_checks(pg, fn, v)


@pytest.mark.parametrize('family', list(_DIRECT))  # all seven together: ~30 s
def test_gathered_position_tables_trace_as_called_directly(family):
  with coverage._clip_keywords():  # pylint: disable=protected-access
    model = coverage._build(family)  # pylint: disable=protected-access
    _direct(model.module, _generic({'params': model.params}), _DIRECT[family])


@pytest.mark.slow
def test_big_bird_block_sparse_attention_traces_as_called_directly():
  config = coverage._config('big_bird')  # pylint: disable=protected-access
  config.attention_type = 'block_sparse'  # 64 tokens: long enough to stay block-sparse
  model = transformers.FlaxAutoModel.from_config(config, seed=0)
  ids = jnp.asarray(np.random.default_rng(0).integers(2, 99, (1, 64)), jnp.int32)
  positions = jnp.broadcast_to(jnp.arange(64, dtype=jnp.int32), ids.shape)
  args = (ids, jnp.ones_like(ids), jnp.zeros_like(ids), positions, None)
  _direct(model.module, _generic({'params': model.params}), args)


def test_a_gathered_table_reduced_is_refused():
  """A constant table read at data-chosen rows may only be moved, combined elementwise or
  contracted with activations; a reduction of it is refused with a clear error."""
  table = jnp.asarray(np.random.default_rng(0).standard_normal((8, 4)), jnp.float32)

  def apply(v, x, positions):
    rows = table[positions]  # [batch, seq, 4]
    return (x @ v['w']) * rows.sum(-1, keepdims=True)
  v = {'w': jnp.ones((4, 4))}
  x = jnp.ones((1, 3, 4))
  with pytest.raises(gmn_jax.UnsupportedModelError, match='constant table'):
    gmn_jax.trace_function(apply, v, x, jnp.asarray([[0, 2, 5]], jnp.int32))


def _gathered_table_model(table):
  def apply(v, x, positions):
    hidden = (x @ v['w1']) * table[positions]  # [batch, seq, 4] times the rows chosen
    return hidden @ v['w2']
  rng = np.random.default_rng(0)
  v = {'w1': jnp.asarray(rng.standard_normal((3, 4)), jnp.float32),
       'w2': jnp.asarray(rng.standard_normal((4, 2)), jnp.float32)}
  return apply, v, jnp.ones((1, 5, 3)), jnp.asarray([[0, 6, 2, 2, 7]], jnp.int32)


def test_a_gathered_table_tells_apart_exactly_the_neurons_whose_columns_differ():
  """Columns 0 and 1 of the table are equal, 2 and 3 differ: the hidden neurons 0 and 1 may
  trade places, 2 and 3 stay where they are, at whatever rows the positions choose."""
  table = np.random.default_rng(1).standard_normal((8, 4)).astype(np.float32)
  table[:, 1] = table[:, 0]
  apply, v, x, positions = _gathered_table_model(jnp.asarray(table))
  pg = gmn_jax.trace_function(apply, v, x, positions)
  orders = set()
  for seed in range(12):
    moved = pg.random_symmetry(seed).apply(v)
    orders.add(tuple(int(np.flatnonzero(np.all(v['w1'] == c[:, None], axis=0))[0])
                     for c in np.asarray(moved['w1']).T))
  assert orders == {(0, 1, 2, 3), (1, 0, 2, 3)}


def test_a_gathered_table_of_equal_columns_keeps_every_permutation():
  """The negative twin: where every column is the same, nothing tells the neurons apart."""
  table = np.repeat(np.random.default_rng(1).standard_normal((8, 1)), 4, 1).astype(np.float32)
  apply, v, x, positions = _gathered_table_model(jnp.asarray(table))
  pg = gmn_jax.trace_function(apply, v, x, positions)
  orders = {tuple(np.asarray(pg.random_symmetry(s).apply(v)['w1'])[0].argsort())
            for s in range(20)}
  assert len(orders) > 2

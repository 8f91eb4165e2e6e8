"""Editing models (`Editor`, `FlatEditor`): equivariance of the decoded edit on every family.

Corner cases covered:
- every architecture family the tracer supports (MLP, SIREN, CNN, CNN+BN, ResNet, transformer,
  embedding model) with GMN, NG-GNN and NG-T editors: decode(edit(g.theta)) == g.decode(edit(
  theta)), biases included; negative twins (a non-symmetry is not followed);
- the index-feature control and the flat-MLP baseline are *not* equivariant;
- a fresh editor is the identity edit (zero-initialised outputs), exactly.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

import gmn_jax
import gmn_jax.testing as gt
from tests.support import tiny_metanets as metanets

FAMILIES = dict(metanets.FAMILIES, siren='siren')


@functools.lru_cache(maxsize=None)
def _editor_fn(family: str, net: str, index_features: int = 0):
  pg, variables = metanets.case(FAMILIES[family])
  editor = gmn_jax.Editor(metanets.tiny(net), max_kernel_size=pg.kernel_size,
                          index_features=index_features)
  # Random (non-zero) delta maps and scales: the zero init would make the check vacuous.
  params = metanets.random_params(editor, pg.encode(variables))
  return pg, variables, jax.jit(lambda g: editor.apply(params, g))


# Every family, the three metanetworks in turn (each backbone's own node and edge vectors are
# checked on every family in test_metanetworks.py; here the edit on top of them).
EDITOR_CASES = [(f, ('gmn', 'nggnn', 'ngt')[i % 3]) for i, f in enumerate(FAMILIES)]


@pytest.mark.parametrize('family,net', EDITOR_CASES)
def test_editor_is_equivariant(family, net):
  pg, variables, fn = _editor_fn(family, net)
  gt.assert_equivariant(fn, pg, variables, jax.random.key(1), n=2)
  gt.assert_not_equivariant(fn, pg, variables, 0, kind='incoming')


def test_edit_moves_biases():
  """The check above compares decoded biases too; here they must actually be edited."""
  pg, variables, fn = _editor_fn('siren', 'gmn')
  edited = pg.decode(fn(pg.encode(variables)))
  for layer in ('Dense_0', 'Dense_1'):
    before = np.asarray(variables['params'][layer]['bias'])
    after = np.asarray(edited['params'][layer]['bias'])
    assert not np.allclose(before, after, atol=1e-6), layer


@pytest.mark.parametrize('family', ['siren', 'cnn_bn'])
def test_index_feature_control_is_not_equivariant(family):
  pg, variables, fn = _editor_fn(family, 'gmn', index_features=8)
  with pytest.raises(AssertionError, match='not equivariant'):
    gt.assert_equivariant(fn, pg, variables, jax.random.key(1), n=2)


def test_flat_editor_is_not_equivariant():
  pg, variables = metanets.case('siren')
  editor = gmn_jax.FlatEditor.for_architecture(pg, hidden=(16, 16))
  params = metanets.random_params(editor, pg.encode(variables))
  fn = jax.jit(lambda g: editor.apply(params, g))
  with pytest.raises(AssertionError, match='not equivariant'):
    gt.assert_equivariant(fn, pg, variables, jax.random.key(1), n=2)


@pytest.mark.parametrize('net', ['gmn', 'flat'])
def test_fresh_editor_is_the_identity(net):
  pg, variables = metanets.case('siren')
  graph = pg.encode(variables)
  editor = (gmn_jax.FlatEditor.for_architecture(pg, hidden=(16, 16)) if net == 'flat'
            else gmn_jax.Editor(metanets.tiny('deepsets')))
  params = jax.jit(editor.init)(jax.random.key(0), graph)
  out = editor.apply(params, graph)
  jax.tree.map(np.testing.assert_array_equal, pg.decode(out), variables)
  for scale in jax.tree.leaves(params['params']['scales']):
    np.testing.assert_array_equal(scale, np.float32(0.01))

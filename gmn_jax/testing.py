"""Equivariance checks for metanetworks: `assert_invariant`, `assert_equivariant` and their
negative twins, built on `ParameterGraph.random_symmetry`.

Example::

    import gmn_jax, gmn_jax.testing
    pg = gmn_jax.trace(model, variables, x)
    net = gmn_jax.GMN()
    params = net.init(key, pg.encode(variables))
    fn = jax.jit(lambda g: net.apply(params, g))
    gmn_jax.testing.assert_invariant(fn, pg, variables, key)
    gmn_jax.testing.assert_equivariant(fn, pg, variables, key)
    gmn_jax.testing.assert_not_invariant(fn, pg, variables, key)
"""

from gmn_jax._src.testing import (NON_SYMMETRIES, assert_equivariant, assert_invariant,
                                  assert_not_equivariant, assert_not_invariant, non_symmetry)

__all__ = [
    'NON_SYMMETRIES', 'assert_equivariant', 'assert_invariant', 'assert_not_equivariant',
    'assert_not_invariant', 'non_symmetry',
]

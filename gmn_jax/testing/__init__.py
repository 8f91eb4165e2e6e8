"""Equivariance checks for metanetworks, each with a negative twin that must fail.

- `permutations`: per-graph outputs invariant, per-parameter outputs equivariant, under
  random function-preserving permutations of hidden neurons; non-symmetries (input, output
  or incoming-weight swaps) must change them.
- `scaling`: the same for the rescalings and sign flips of `gmn_jax.graphs.scaling`; wrong
  factors must change the outputs.

Example::

    import gmn_jax, gmn_jax.testing
    pg = gmn_jax.trace(model, variables, x)
    net = gmn_jax.GMN()
    params = net.init(key, pg.encode(variables))
    fn = jax.jit(lambda g: net.apply(params, g))
    gmn_jax.testing.assert_invariant(fn, pg, variables, key)
    gmn_jax.testing.assert_not_invariant(fn, pg, variables, key)
"""

from gmn_jax.testing.permutations import (NON_SYMMETRIES, assert_equivariant, assert_invariant,
                                          assert_not_equivariant, assert_not_invariant,
                                          non_symmetry)
from gmn_jax.testing.scaling import (assert_not_scale_invariant, assert_scale_equivariant,
                                     assert_scale_invariant)

__all__ = [
    'NON_SYMMETRIES', 'assert_equivariant', 'assert_invariant', 'assert_not_equivariant',
    'assert_not_invariant', 'assert_not_scale_invariant', 'assert_scale_equivariant',
    'assert_scale_invariant', 'non_symmetry',
]

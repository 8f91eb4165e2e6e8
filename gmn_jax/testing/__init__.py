"""Equivariance checks for metanetworks, each with a negative twin that must fail.

- `permutations`: per-graph outputs invariant, per-parameter outputs equivariant, under
  random function-preserving permutations of hidden neurons; non-symmetries (input, output
  or incoming-weight swaps) must change them.
- `scaling`: the same for the rescalings and sign flips of `gmn_jax.graphs.scaling`; wrong
  factors must change the outputs.

Each module's docstring has a usage example.
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

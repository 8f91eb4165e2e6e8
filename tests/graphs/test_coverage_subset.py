"""A representative subset of `benchmarks/coverage.py`: transformers' own Flax ALBERT (BERT's
calling convention: a learned position table looked up with wrapper-built ids, integer masks,
a ModelOutput; plus one layer shared across depth) and ViT (channels-first pixels, a class
token), traced as their wrappers call them, pass every check."""

import pytest

transformers = pytest.importorskip('transformers')  # the `hf` extra

from benchmarks import coverage  # pylint: disable=g-import-not-at-top,wrong-import-position

pytestmark = pytest.mark.slow  # real transformers models through every coverage check (~50 s each)


@pytest.mark.parametrize('family', ['albert', 'vit'])
def test_transformers_family_passes_every_coverage_check(family):
  row = coverage.check(family)
  assert row['traces'] and row['exact'] and row['slots'] and row['sym'], row['error']

"""Scaling symmetries: ReLU neurons rescale, tanh/sin neurons flip sign, everything else is
left alone; the rescaled parameters compute the same function, and a control that rescales
neurons that do not admit it changes the function."""

from tests.support import models
import numpy as np
import pytest

from gmn_jax.graphs import scaling


def _relative_change(fn, pg, variables, factors) -> float:
  edited = pg.decode(scaling.apply_factors(pg.encode(variables), factors))
  a, b = np.asarray(fn(variables)), np.asarray(fn(edited))
  return float(np.abs(a - b).max() / np.abs(a).max())


@pytest.mark.parametrize('name', models.ALL)
def test_scalings_keep_the_function(traced, name):
  pg, variables, fn = traced(name)
  kinds = scaling.scaling_kinds(pg)
  factors = scaling.random_factors(kinds, np.random.default_rng(0), max_scale=3.0)
  assert _relative_change(fn, pg, variables, factors) <= 1e-5


@pytest.mark.parametrize('name,expected', [
    ('mlp', scaling.SCALE), ('cnn_grouped', scaling.SCALE), ('cnn_flatten', scaling.SCALE),
    ('siren', scaling.SIGN), ('cnn_bn', None), ('resnet', None), ('vit', None)])
def test_which_neurons_admit_a_scaling(traced, name, expected):
  pg, _, _ = traced(name)
  kinds = scaling.scaling_kinds(pg)
  hidden = np.asarray(pg.node_type) == 1
  assert np.all(kinds[~hidden] == scaling.NONE)
  if expected is None:  # normalisation, residual streams, attention: no factor is sound
    assert np.all(kinds == scaling.NONE)
  else:
    assert np.all(kinds[hidden] == expected)


@pytest.mark.parametrize('name', ['siren', 'cnn_bn'])
def test_scaling_other_neurons_changes_the_function(traced, name):
  pg, variables, fn = traced(name)
  hidden = np.asarray(pg.node_type) == 1
  factors = np.where(hidden, 2.0, 1.0).astype(np.float32)  # sin(2z) != 2 sin(z); BN renormalises
  assert _relative_change(fn, pg, variables, factors) > 1e-3


@pytest.mark.parametrize('program,expected', [
    (';add(_,p0[θ]);max(_,0)', (scaling.SCALE, True)),
    (';add(_,p0[θ]);max(_,0);mean[axes=(1, 2)]', (scaling.SCALE, True)),
    (';add(_,p0[θ]);mul[](30,_);sin[](_)', (scaling.SIGN, True)),
    (';max(_,0)', (scaling.SCALE, False)),
    (';add(_,p0[θ]);add(_,p1[θ]);max(_,0)', (scaling.NONE, True)),
    (';add(_,p0[θ]);mul[](_,d292979042);max(_,0)', (scaling.NONE, True)),  # data, not literal
    (';add(_,p0[θ]);max(_,0);tanh[](_)', (scaling.NONE, True)),
])
def test_program_scaling(program, expected):
  assert scaling.program_scaling(program) == expected

"""Edge-sharded message passing on a mesh of 4 simulated CPU devices (see
`tests/support/devices.py`)."""

import pytest

from tests.support.devices import run_on_devices

pytestmark = pytest.mark.slow  # a pytest subprocess on 4 simulated devices


def test_edge_sharded_gmn_on_four_devices():
  run_on_devices('tests/metanets/sharded_on_devices.py')

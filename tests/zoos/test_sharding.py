"""Zoo generation on a mesh of 4 simulated CPU devices (see `tests/support/devices.py`)."""

from tests.support.devices import run_on_devices


def test_zoo_members_on_four_devices():
  run_on_devices('tests/zoos/zoo_on_devices.py')

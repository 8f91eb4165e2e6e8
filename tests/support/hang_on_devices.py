"""A device run that outlives its timeout (for the timeout test in tests/training)."""

import time


def test_outlives_the_timeout():
  print('started', flush=True)
  time.sleep(120)

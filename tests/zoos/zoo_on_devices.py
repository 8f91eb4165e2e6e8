"""Zoo members trained with the member axis split over 4 devices equal those trained on one
(run by test_sharding.py with 4 CPU devices)."""

import jax
import numpy as np

import gmn_jax
from gmn_jax.zoos import datasets as datasets_lib
from gmn_jax.zoos import training as zoo_training
from gmn_jax.zoos import zoo as zoo_lib

CONFIG = gmn_jax.ZooConfig.tiny()


def test_members_sharded_over_four_devices_equal_one_device():
  assert jax.device_count() == 4
  data = datasets_lib.load_dataset('digits', max_train=256, max_test=128)
  hp = zoo_lib.sample_hyperparameters(CONFIG)
  members = np.arange(6)  # padded to 8, two members per device
  one = zoo_training.train_members(CONFIG, 4, members, hp, data)
  with jax.set_mesh(gmn_jax.make_mesh()):
    four = zoo_training.train_members(CONFIG, 4, members, hp, data)
  np.testing.assert_array_equal(four['diverged'], one['diverged'])
  for name in one['metrics']:
    np.testing.assert_allclose(four['metrics'][name], one['metrics'][name], rtol=1e-4,
                               atol=1e-5, err_msg=name)
  for a, b in zip(jax.tree.leaves(four['params']), jax.tree.leaves(one['params'])):
    assert a.shape == b.shape and a.shape[0] == 6
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # the members differ from each other (a real zoo, not one member copied)
  first = jax.tree.leaves(one['params'])[0]
  assert not np.allclose(first[0], first[1])

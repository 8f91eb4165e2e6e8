"""The CNN zoo (Unterthiner et al. 2020's Small CNN Zoo, generated or read).

`small_cnn` is the zoo's CNN; `config` samples each member's hyperparameters; `members`
trains a shard of members in one vmapped, jitted program; `zoo` generates, checksums, resumes
and loads zoos; `small_cnn_zoo` reads and writes the public Small CNN Zoo format and
`small_cnn_zoo_architecture` settles and checks what that format does not record.
"""

from gmn_jax.zoos.cnn.small_cnn_zoo import read_small_cnn_zoo, write_small_cnn_zoo
from gmn_jax.zoos.cnn.small_cnn_zoo_architecture import ZooArchitecture
from gmn_jax.zoos.cnn.zoo import SmallCNN, Zoo, ZooConfig, ZooError, generate_zoo, load_zoo

__all__ = ['SmallCNN', 'Zoo', 'ZooArchitecture', 'ZooConfig', 'ZooError', 'generate_zoo',
           'load_zoo', 'read_small_cnn_zoo', 'write_small_cnn_zoo']

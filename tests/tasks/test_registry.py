"""The method registry every task shares: a new method is one `REGISTRY` entry. No training."""

from __future__ import annotations

import dataclasses

import pytest

from gmn_jax import tasks
from gmn_jax.tasks.registry import (NO_AUGMENT, PERMUTATIONS, SYMMETRIES, Labels, Method,
                                    check_methods)
from gmn_jax.training.fit import TrainConfig


@pytest.mark.parametrize('name', tasks.TASKS)
def test_one_entry_makes_a_method(name, monkeypatch):
  task = getattr(tasks, name)
  assert set(task.METHODS) == set(task.REGISTRY)
  assert all(isinstance(m, Method) for m in task.REGISTRY.values())
  with pytest.raises(ValueError, match="unknown methods \\['new'\\]"):
    dataclasses.replace(task.Config.tiny(), methods=('new',))
  monkeypatch.setitem(task.REGISTRY, 'new', Method('New', None))
  assert dataclasses.replace(task.Config.tiny(), methods=('new',)).methods == ('new',)
  if hasattr(task, 'LABELS'):  # the report's labels read the registry when asked
    assert task.LABELS['new'] == 'New' and 'new' in list(task.LABELS)


def test_labels_read_the_registry_and_extra_names():
  registry = {'a': Method('A', None)}
  labels = Labels(registry, {'adam': 'Adam (tuned)'})
  assert dict(labels) == {'a': 'A', 'adam': 'Adam (tuned)'} and len(labels) == 2
  registry['b'] = Method('B', None)
  assert labels['b'] == 'B' and len(labels) == 3
  with pytest.raises(KeyError):
    labels['c']  # pylint: disable=pointless-statement


def test_augment_is_one_field():
  train = TrainConfig(max_scale=2.0)
  assert Method('GMN', None).train_config(train) is train
  assert Method('StatNN', None, augment=PERMUTATIONS).train_config(train).max_scale == 1.0
  assert Method('StatNN', None, augment=PERMUTATIONS).train_config(train).augment
  flat = Method('MLP', None, augment=NO_AUGMENT).train_config(train)
  assert not flat.augment and flat.max_scale == 1.0
  assert Method('x', None, augment=SYMMETRIES).augment == 'symmetries'
  with pytest.raises(ValueError, match='augment must be one of'):
    Method('x', None, augment='scales')
  # The baselines that cannot learn to ignore a neuron's scale or sign, in every task.
  permutations = {name: sorted(k for k, m in getattr(tasks, name).REGISTRY.items()
                               if m.augment == PERMUTATIONS)
                  for name in ('generalization', 'diverse_architectures', 'inr_classification')}
  assert permutations == {'generalization': ['mlp', 'statnn', 'statnn_gbm'],
                          'diverse_architectures': ['deepsets', 'dmc', 'statnn'],
                          'inr_classification': ['deepsets', 'statnn']}
  # The INR flat MLP reads a fixed layout: no augmentation, as DWSNets trains it.
  assert tasks.inr_classification.REGISTRY['mlp'].augment == NO_AUGMENT


def test_check_methods():
  registry = {'a': Method('A', None), 'b': Method('B', None)}
  assert check_methods(['b', 'a'], registry) == ('b', 'a')
  with pytest.raises(ValueError, match=r"unknown methods \['c'\]; choose from \('a', 'b'\)"):
    check_methods(('a', 'c'), registry)

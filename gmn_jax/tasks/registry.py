"""The method registry every task shares: a method is one `Method` entry in its task's
`REGISTRY` (`gmn_jax.tasks.<task>.methods`), and a config's `methods` are keys of it::

    REGISTRY = {
        'gmn': Method('GMN', _gmn),
        'statnn': Method('StatNN', _statnn, graph=False, augment=PERMUTATIONS),
    }

What a builder takes is the task's own (its `methods` module says): the config and what the
task knows once its zoo is encoded (padding budget, the SIREN's graph, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

SYMMETRIES = 'symmetries'
PERMUTATIONS = 'permutations'
NO_AUGMENT = 'none'
AUGMENTS = (SYMMETRIES, PERMUTATIONS, NO_AUGMENT)


@dataclasses.dataclass(frozen=True)
class Method:
  """One method of a task's comparison.

  Attributes:
    label: its name in reports.
    build: the task's builder of the method's model (a Flax module, or an update rule), or
      None for a method that trains no model through the task's loop (e.g. the identity
      edit, gradient-boosted trees).
    graph: a graph metanetwork (message passing over the parameter graph, with the
      per-neuron probe values where the task computes them); False: a baseline (flat
      weights, their statistics, or an unordered set of them).
    probes: it learns its own probe inputs (`metanets.LearnedProbes` around the model).
    augment: the random symmetries it trains with: `SYMMETRIES` (neuron permutations and the
      scale or sign symmetries of each neuron's activation) or `PERMUTATIONS` only (for
      features that cannot learn to ignore a neuron's scale or sign, such as weight
      statistics), or `NO_AUGMENT` (for inputs in a fixed order that a relabelling of the
      neurons would scramble: flat weights).
  """

  label: str
  build: Callable[..., Any] | None
  graph: bool = True
  probes: bool = False
  augment: str = SYMMETRIES

  def __post_init__(self):
    if self.augment not in AUGMENTS:
      raise ValueError(f'augment must be one of {AUGMENTS}, not {self.augment!r}')

  def train_config(self, train: Any) -> Any:
    """`train` (a `TrainConfig`) with the scale and sign augmentation off for
    `PERMUTATIONS` methods and all augmentation off for `NO_AUGMENT` ones."""
    if self.augment == SYMMETRIES:
      return train
    if self.augment == PERMUTATIONS:
      return dataclasses.replace(train, max_scale=1.0)
    return dataclasses.replace(train, augment=False, max_scale=1.0)


def check_methods(methods: Sequence[str], registry: Mapping[str, Method]) -> tuple[str, ...]:
  """`methods` as a tuple, after checking they are keys of `registry`.

  Raises:
    ValueError: an unknown method (the message lists the known ones).
  """
  methods = tuple(methods)
  unknown = set(methods) - set(registry)
  if unknown:
    raise ValueError(f'unknown methods {sorted(unknown)}; choose from {tuple(registry)}')
  return methods


class Labels(Mapping[str, str]):
  """The report labels of a registry's methods (and of `extra` names), looked up when read:
  an entry added to the registry later has its label too.

  Args:
    registry: a task's `REGISTRY`.
    extra: labels of names that are not methods (e.g. hand-designed optimizers).
  """

  def __init__(self, registry: Mapping[str, Method], extra: Mapping[str, str] | None = None):
    self._registry, self._extra = registry, dict(extra or {})

  def __getitem__(self, name: str) -> str:
    if name in self._registry:
      return self._registry[name].label
    return self._extra[name]

  def __iter__(self) -> Iterator[str]:
    yield from self._registry
    yield from (k for k in self._extra if k not in self._registry)

  def __len__(self) -> int:
    return len(set(self._registry) | set(self._extra))

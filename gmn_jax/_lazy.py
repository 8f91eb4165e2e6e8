"""Lazy package attributes (PEP 562): a package's public names imported on first use."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_attributes(package: str, namespace: dict[str, Any], public: Mapping[str, str],
                    subpackages: Iterable[str] = ()) -> tuple[Callable[[str], Any],
                                                              Callable[[], list[str]]]:
  """The `__getattr__` and `__dir__` of a package whose names are imported on first use.

  Args:
    package: the package's dotted name (`__name__`).
    namespace: the package's `globals()`; a name once imported is stored there, so later
      look-ups do not reach `__getattr__`.
    public: each public name and the module that defines it.
    subpackages: sub-modules reachable as attributes (`gmn_jax.graphs`).

  Returns:
    `(__getattr__, __dir__)`, to assign at the package's top level.
  """
  subpackages = frozenset(subpackages)

  def __getattr__(name: str) -> Any:
    if name in subpackages:
      return importlib.import_module(f'{package}.{name}')
    if name in public:
      value = getattr(importlib.import_module(public[name]), name)
      namespace[name] = value
      return value
    raise AttributeError(f'module {package!r} has no attribute {name!r}')

  def __dir__() -> list[str]:
    return sorted(set(namespace) | set(namespace.get('__all__', ())))

  return __getattr__, __dir__

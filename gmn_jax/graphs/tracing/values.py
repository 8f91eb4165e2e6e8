"""What the tracer knows about each value of a jaxpr (`Const`, `Param`, `Data`, `Index`; the
package docstring says what each carries), the primitive families it dispatches on, and the
label helpers its rules share. Host-side."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from gmn_jax.graphs import architecture as arch_lib
from gmn_jax.graphs.architecture import EdgeType


class UnsupportedModelError(ValueError):
  """The model computes something the parameter graph cannot represent faithfully."""


@dataclasses.dataclass
class Const:
  value: np.ndarray


@dataclasses.dataclass
class Param:
  terms: tuple[np.ndarray, ...]  # each: flat parameter index per element, -1 where none
  program: str  # elementwise function of the terms, 'θ' standing for a term


@dataclasses.dataclass
class Data:
  labels: np.ndarray  # neuron id per element, -1 where none
  program: str
  # Parameters met by a statistic (e.g. LayerNorm's `rsqrt(var) * scale`), waiting for the
  # neurons they will act on: each entry is one term's flat indices, shaped like `labels`.
  pending: tuple[np.ndarray, ...] = ()


@dataclasses.dataclass
class Index:
  program: str


@dataclasses.dataclass
class Table:
  """A constant read at rows chosen by integer inputs (a rotary or sinusoidal table gathered by
  position ids). Each element's key names the constant column it reads, so two elements with
  one key hold the same value wherever the rows fall; distinct columns have distinct keys."""
  keys: np.ndarray  # int64 key per element
  program: str


Value = Const | Param | Data | Index | Table

UNARY = {
    'neg', 'exp', 'exp2', 'log', 'log1p', 'expm1', 'tanh', 'logistic', 'sin', 'cos', 'tan',
    'asin', 'acos', 'atan', 'sinh', 'cosh', 'asinh', 'acosh', 'atanh', 'sqrt', 'rsqrt', 'cbrt',
    'abs', 'sign', 'floor', 'ceil', 'round', 'erf', 'erfc', 'erf_inv', 'integer_pow', 'square',
    'convert_element_type', 'reduce_precision', 'is_finite', 'not', 'real', 'imag', 'lgamma',
    'digamma', 'population_count',
}
NARY = {
    'add', 'add_any', 'sub', 'mul', 'div', 'max', 'min', 'pow', 'atan2', 'rem', 'nextafter',
    'select_n', 'clamp', 'eq', 'ne', 'lt', 'gt', 'le', 'ge', 'and', 'or', 'xor',
}
IDENTITY = {'stop_gradient', 'copy', 'copy_p', 'optimization_barrier', 'sharding_constraint',
             'pvary', 'mesh_cast', 'reshard'}
REDUCTIONS = {'reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod', 'reduce_and',
               'reduce_or', 'argmax', 'argmin'}
WINDOWED = {'reduce_window_sum', 'reduce_window_max', 'reduce_window_min', 'reduce_window',
             'cumsum', 'cumprod', 'cummax', 'cummin', 'cumlogsumexp'}
SLICING = {'slice', 'dynamic_slice', 'gather', 'split'}
JOIN_EDGE = {'add': (EdgeType.RESIDUAL, EdgeType.RESIDUAL),
              'add_any': (EdgeType.RESIDUAL, EdgeType.RESIDUAL),
              'sub': (EdgeType.RESIDUAL, EdgeType.RESIDUAL_NEG),
              'mul': (EdgeType.PRODUCT, EdgeType.PRODUCT)}


def describe_const(value: np.ndarray) -> str:
  value = np.asarray(value)
  if value.size == 1:
    return f'{value.reshape(()).item():.6g}'
  return f'arr{value.shape}#{arch_lib.digest(value.tobytes().hex())}'


def params_text(params: dict[str, Any]) -> str:
  keep = {k: v for k, v in params.items()
          if k in ('y', 'axes', 'new_dtype', 'dimension', 'axis', 'window_dimensions',
                   'window_strides', 'padding', 'reverse')}
  return ','.join(f'{k}={v}' for k, v in sorted(keep.items()))


def take0(labels: np.ndarray, axes: Sequence[int]) -> np.ndarray:
  """labels with every axis in `axes` reduced to its first entry (kept, size 1)."""
  index = tuple(slice(0, 1) if a in axes else slice(None) for a in range(labels.ndim))
  return labels[index]


def shrink(arrays: Sequence[np.ndarray], shape) -> list[np.ndarray]:
  """The arrays (broadcast to `shape`) reduced to one entry along every axis where all of them
  are constant: same pairs of values, far fewer elements (spatial axes drop out)."""
  arrays = [np.broadcast_to(a, shape) for a in arrays]
  for axis in range(len(shape)):
    if shape[axis] > 1 and all(a.strides[axis] == 0 or constant_along(a, [axis])
                               for a in arrays):
      arrays = [take0(a, [axis]) for a in arrays]
  return arrays


def as_mean(main: Data, ins: list[Value], name: str) -> str | None:
  """`reduce_sum` over positions followed by division by their count, as one `mean` token."""
  head, sep, count = main.program.rpartition('#n')
  if (name != 'div' or not sep or ins[0] is not main or not isinstance(ins[1], Const)
      or np.size(ins[1].value) != 1 or float(np.ravel(ins[1].value)[0]) != float(count)):
    return None
  start = head.rfind(';reduce_sum[')
  return head[:start] + ';mean[' + head[start + len(';reduce_sum['):] if start >= 0 else None


def constant_along(labels: np.ndarray, axes: Sequence[int]) -> bool:
  if not axes:
    return True
  return bool(np.array_equal(np.broadcast_to(take0(labels, axes), labels.shape), labels))


def fold_padding(labels: np.ndarray, axes: Sequence[int]) -> np.ndarray | None:
  """`labels` with every axis in `axes` reduced to one entry (kept, size 1), ignoring -1
  entries (zero padding: positions that hold no neuron, e.g. LongT5's padded key blocks);
  None where the neurons differ along those axes."""
  if not axes:
    return labels
  folded = np.max(labels, axis=tuple(axes), keepdims=True)
  agree = (labels == folded) | (labels < 0)
  return folded if agree.all() else None

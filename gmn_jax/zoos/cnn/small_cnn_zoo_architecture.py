"""What the Small CNN Zoo format does not record, settled and checked before anything is traced.

`layout.csv` gives every layer's shape, but not how the network ran: the convolutions' padding
and stride, the input images' shape, or which metrics column names each run's activation. The
published zoos answer in `config.*` columns (`config.cnn_stride`, `config.dataset`,
`config.activation`) or not at all (no padding column: Keras' default, 'VALID'). Other zoos
answer, in this order of precedence, through keyword arguments (the `--padding`, `--strides`,
`--input-shape` and `--activation-column` flags of `experiments.generalization`), through an
optional `arch.json` sidecar beside `layout.csv` (for files that cannot carry another column),
e.g. `{"padding": "SAME", "input_shape": [8, 8, 1]}`, through those columns, or by default.

Host-side; nothing here is jitted. Every inconsistency is a `ZooError` raised before tracing,
naming the layer, the shapes and the flag that fixes it.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import pathlib
from typing import Any, Sequence

import numpy as np

from gmn_jax.zoos.cnn import zoo as zoo_lib
from gmn_jax.zoos.cnn.small_cnn import SmallCNN

SIDECAR = 'arch.json'
# What the format leaves open: the keyword argument / arch.json key, and the run's flag.
FLAGS = {'padding': '--padding', 'strides': '--strides', 'input_shape': '--input-shape',
         'activation_column': '--activation-column'}
ACTIVATIONS = ('relu', 'tanh')  # what `SmallCNN` computes
_INPUT_SHAPES = {'mnist': (28, 28, 1), 'fashion_mnist': (28, 28, 1), 'cifar10': (32, 32, 1),
                 'svhn_cropped': (32, 32, 1), 'svhn': (32, 32, 1), 'digits': (8, 8, 1)}
_COLUMNS = {'padding': 'padding', 'strides': 'cnn_stride', 'input_shape': 'input_shape'}


def error(directory, what: str) -> zoo_lib.ZooError:
  return zoo_lib.ZooError(f'Small CNN Zoo {directory}: {what}')


@dataclasses.dataclass(frozen=True)
class ZooArchitecture:
  """The one `SmallCNN` architecture of a Small CNN Zoo directory, and where each part came from.

  Attributes:
    width: channels of every convolution.
    num_layers: convolutions.
    kernel_size: square kernel side.
    num_classes: outputs of the Dense layer.
    strides: stride of every convolution.
    padding: 'SAME' or 'VALID'.
    input_shape: (H, W, C) of the members' images.
    activation_column: the metrics column (without `config.`) naming each run's activation.
    sources: field -> where its value came from ('layout.csv', 'argument', 'arch.json', a
      column, or a default).
  """

  width: int
  num_layers: int
  kernel_size: int
  num_classes: int
  strides: int
  padding: str
  input_shape: tuple[int, ...]
  activation_column: str
  sources: dict[str, str]

  def model_kwargs(self) -> dict[str, Any]:
    """The `SmallCNN` fields every member shares (all but width and activation)."""
    return {'num_classes': self.num_classes, 'num_layers': self.num_layers,
            'kernel_size': self.kernel_size, 'strides': self.strides, 'padding': self.padding}

  def feature_maps(self) -> list[tuple[int, ...]]:
    """Spatial shape after each convolution."""
    model = SmallCNN(width=self.width, **self.model_kwargs())
    return model.feature_map_shapes(tuple(self.input_shape[:-1]))

  def describe(self) -> str:
    """What was inferred, one line per setting, for the start of a run."""
    maps = ' -> '.join('x'.join(map(str, s)) for s in
                       [tuple(self.input_shape[:-1])] + self.feature_maps())
    rows = [f'{self.num_layers} convolutions of {self.width} channels, '
            f'{self.kernel_size}x{self.kernel_size}, Dense to {self.num_classes} classes '
            f'({self.sources["layers"]})']
    for name in ('padding', 'strides', 'input_shape', 'activation_column'):
      rows.append(f'{name} {getattr(self, name)} ({self.sources[name]}; {FLAGS[name]})')
    rows.append(f'feature maps {maps}')
    return '\n'.join(['Small CNN Zoo architecture:'] + [f'  {r}' for r in rows])


def layers_from_layout(directory, entries: Sequence[tuple]) -> dict[str, Any]:
  """Width, layers, kernel size and classes from `layout.csv`, its shapes checked as a chain.

  Args:
    directory: for error messages.
    entries: [(flax layer, param, start, end, shape, varname)] in layout order.

  Raises:
    ZooError: a layer lacks its kernel or bias, or a shape does not follow from the layer
      before (channels in != channels out), or the layers are not the plain CNN.
  """
  layers: dict[str, dict[str, tuple]] = {}
  for layer, param, _, _, shape, varname in entries:
    layers.setdefault(layer, {})[param] = (shape, varname)
  convs = sorted((l for l in layers if l.startswith('Conv_')), key=lambda l: int(l[5:]))
  denses = [l for l in layers if l.startswith('Dense_')]
  if not convs or len(denses) != 1:
    raise error(directory, f'expected convolutions then one Dense layer, got {list(layers)}')
  for layer in convs + denses:
    missing = {'kernel', 'bias'} - set(layers[layer])
    if missing:
      raise error(directory, f'layout.csv: {layer} has no {" or ".join(sorted(missing))}')
  channels = None
  for layer in convs + denses:
    (kernel, name), (bias, bias_name) = layers[layer]['kernel'], layers[layer]['bias']
    rank = 4 if layer.startswith('Conv_') else 2
    if len(kernel) == rank and channels is not None and kernel[-2] != channels:
      raise error(directory, f'layout.csv: {layer} ({name}) takes {kernel[-2]} channels in '
                  f'(shape {kernel}), but the layer before gives {channels}')
    if len(kernel) != rank or bias != kernel[-1:]:
      raise error(directory, f'layout.csv: {layer} ({name}) has kernel shape {kernel} and '
                  f'bias shape {bias} ({bias_name}); expected a rank-{rank} kernel whose last '
                  'axis is the bias\'s length')
    channels = kernel[-1]
  kernels = {l: layers[l]['kernel'][0] for l in convs}
  widths = {k[-1] for k in kernels.values()}
  sizes = {k[:2] for k in kernels.values()}
  if len(widths) != 1 or len(sizes) != 1:
    raise error(directory, f'convolutions of unequal widths or kernels: {kernels}')
  (kh, kw), = sizes
  if kh != kw:
    raise error(directory, f'non-square kernels {kh}x{kw} are not supported')
  return {'width': widths.pop(), 'num_layers': len(convs), 'kernel_size': kh,
          'num_classes': layers[denses[0]]['kernel'][0][-1],
          'in_channels': kernels[convs[0]][2]}


def read_sidecar(directory: pathlib.Path) -> dict[str, Any]:
  """The settings in `directory/arch.json` ({} without one). Raises ZooError if unreadable."""
  path = directory / SIDECAR
  if not path.exists():
    return {}
  try:
    settings = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise error(directory, f'{SIDECAR} is unreadable ({e})') from e
  if not isinstance(settings, dict) or set(settings) - set(FLAGS):
    raise error(directory, f'{SIDECAR} must be a JSON object with keys among {list(FLAGS)}; '
                f'it holds {settings!r}')
  return settings


def _column_value(directory, table: dict[str, np.ndarray], column: str):
  values = np.unique(table[column].astype(str))
  if len(values) != 1:
    raise error(directory, f'config.{column} takes several values {values.tolist()}; '
                'weights.npy holds one architecture, so read one value at a time (rows=...)')
  return table[column][0]


def _check_value(directory, name: str, value, source: str):
  """The value, normalised; a ZooError naming the source and flag when it cannot be one."""
  try:
    if name == 'padding':
      value = str(value).upper()
      ok = value in ('SAME', 'VALID')
    elif name == 'strides':
      value = int(value)
      ok = value >= 1
    elif name == 'input_shape':
      value = tuple(int(d) for d in (ast.literal_eval(value) if isinstance(value, str)
                                     else value))
      ok = len(value) == 3 and min(value) >= 1
    else:
      value = str(value)
      value = value[len('config.'):] if value.startswith('config.') else value
      ok = bool(value)
  except (ValueError, TypeError, SyntaxError):
    ok = False
  if not ok:
    raise error(directory, f'{name} {value!r} from {source} is not valid (padding: SAME or '
                f'VALID; strides: a positive integer; input_shape: (H, W, C)); fix it with '
                f'{FLAGS[name]}')
  return value


def resolve(directory, layers: dict[str, Any], table: dict[str, np.ndarray],
            overrides: dict[str, Any]) -> ZooArchitecture:
  """Settles padding, strides, input shape and activation column, then checks the whole.

  Args:
    directory: the zoo directory (its `arch.json` is read).
    layers: `layers_from_layout`'s result.
    table: the metrics columns, `config.` stripped, [rows] each.
    overrides: keyword arguments of `read_small_cnn_zoo` (None: not given).

  Returns:
    The architecture, with where each setting came from.

  Raises:
    ZooError: a setting is invalid or varies between rows, the input's channels differ from
      the first kernel's, the activation column is missing or names an activation `SmallCNN`
      does not compute, or a feature map vanishes (the message names the layer and the flag).
  """
  sidecar = read_sidecar(pathlib.Path(directory))
  values, sources = {}, {'layers': 'layout.csv'}
  dataset = (str(_column_value(directory, table, 'dataset')) if 'dataset' in table
             and len(table['dataset']) else '')
  known = _INPUT_SHAPES.get(dataset)
  defaults = {
      'padding': ('VALID', "default: Keras' VALID, as there is no config.padding column"),
      'strides': (2, "default: the Small CNN Zoo's 2, as there is no config.cnn_stride column"),
      'input_shape': ((known, f'from config.dataset {dataset!r}') if known else
                      ((32, 32, layers['in_channels']), f'default: 32x32, as config.dataset '
                       f'{dataset!r} is none of {sorted(_INPUT_SHAPES)}')),
      'activation_column': ('activation', 'default')}
  for name in FLAGS:
    column = _COLUMNS.get(name)
    if overrides.get(name) is not None:
      value, source = overrides[name], 'argument'
    elif name in sidecar:
      value, source = sidecar[name], SIDECAR
    elif column in table and len(table[column]):
      value, source = _column_value(directory, table, column), f'config.{column} column'
    else:
      value, source = defaults[name]
    values[name], sources[name] = _check_value(directory, name, value, source), source
  arch = ZooArchitecture(**{k: layers[k] for k in ('width', 'num_layers', 'kernel_size',
                                                   'num_classes')}, **values, sources=sources)
  if arch.input_shape[-1] != layers['in_channels']:
    raise error(directory, f'input shape {arch.input_shape} ({sources["input_shape"]}) has '
                f'{arch.input_shape[-1]} channels but the first kernel takes '
                f'{layers["in_channels"]}; fix it with {FLAGS["input_shape"]}')
  _check_activations(directory, arch, table)
  _check_feature_maps(directory, arch)
  return arch


def _check_activations(directory, arch: ZooArchitecture, table: dict[str, np.ndarray]):
  column = arch.activation_column
  if column not in table:
    raise error(directory, f'no config.{column} column names each run\'s activation '
                f'({arch.sources["activation_column"]}); the metrics have '
                f'{sorted(table)}: name the right one with {FLAGS["activation_column"]}')
  unknown = sorted(set(table[column].astype(str).tolist()) - set(ACTIVATIONS))
  if unknown:
    raise error(directory, f'config.{column} holds {unknown}, but the zoo\'s CNN computes only '
                f'{list(ACTIVATIONS)}; if another column names the activation, pass '
                f'{FLAGS["activation_column"]}')


def _check_feature_maps(directory, arch: ZooArchitecture):
  spatial = tuple(arch.input_shape[:-1])
  for i, after in enumerate(arch.feature_maps()):
    if min(after) < 1:
      raise error(directory, (
          f'the feature map vanishes at Conv_{i}: its {"x".join(map(str, spatial))} input, '
          f'a {arch.kernel_size}x{arch.kernel_size} kernel, stride {arch.strides} and '
          f'{arch.padding} padding leave {"x".join(map(str, after))} (input {arch.input_shape} '
          f'{arch.sources["input_shape"]}; padding {arch.sources["padding"]}; strides '
          f'{arch.sources["strides"]}). If the zoo was trained otherwise, say so with '
          f'{FLAGS["padding"]} (e.g. SAME), {FLAGS["strides"]} or {FLAGS["input_shape"]}, or '
          f'the same keys in {SIDECAR} beside layout.csv'))
    spatial = after


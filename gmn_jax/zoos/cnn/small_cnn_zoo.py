"""The public Small CNN Zoo format (Unterthiner et al. 2020): read it, and write our zoos to it.

A directory with three files (host-side numpy/csv; nothing here is jitted):

  weights.npy       float32 [rows, P]: one network snapshot per row, TF variables flattened in
                    `layout.csv` order (4,970 parameters for CIFAR10-GS / SVHN-GS)
  layout.csv        `varname,start_idx,end_idx,shape`, e.g.
                    `sequential/conv2d/kernel:0,16,160,"(3, 3, 1, 16)"`: each variable's slice
                    of a row, each layer's bias before its kernel
  metrics.csv(.gz)  one line per row of weights.npy: `config.*` hyperparameters, `modeldir`
                    (one per training run), `step`, `test_accuracy`, `test_loss`,
                    `train_accuracy`, `train_loss`

Keras' `Conv2D` kernels are (kh, kw, in, out) and `Dense` kernels (in, out), as in Flax, so a
row unflattens into `SmallCNN` parameters by renaming alone: the k-th `conv2d*` layer becomes
`Conv_k` and the k-th `dense*` layer `Dense_k`, in layout order. The architecture comes from the
shapes (width, kernel size, layers, classes); what the format does not record (padding,
strides, input shape, the activation column) from arguments, an optional `arch.json` beside
`layout.csv`, `config.*` columns or defaults, checked before anything is traced
(`small_cnn_zoo_architecture`).
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import os
import pathlib
import re
import warnings
from typing import Callable, Sequence

import numpy as np

from gmn_jax.graphs import finite
from gmn_jax.zoos.cnn import small_cnn_zoo_architecture as arch_lib
from gmn_jax.zoos.cnn import zoo as zoo_lib

_LAYOUT_COLUMNS = ('varname', 'start_idx', 'end_idx', 'shape')
_METRIC_COLUMNS = ('modeldir', 'step', 'test_accuracy', 'test_loss', 'train_accuracy',
                   'train_loss')
_VARNAME = re.compile(r'^(?:.*/)?(conv2d|dense)(_\d+)?/(kernel|bias)(?::\d+)?$')
_FLAX_LAYER = {'conv2d': 'Conv', 'dense': 'Dense'}
_TF_LAYER = {'Conv': 'conv2d', 'Dense': 'dense'}


_error = arch_lib.error


def _open_csv(path: pathlib.Path):
  raw = path.read_bytes()
  if path.suffix == '.gz':
    raw = gzip.decompress(raw)
  return csv.reader(io.StringIO(raw.decode('utf-8')))


def _header(rows, path, required) -> tuple[list[str], list[list[str]]]:
  rows = list(rows)
  if not rows:
    raise _error(path.parent, f'{path.name} is empty')
  header = rows[0]
  # pandas' `to_csv` writes its index as a first, unnamed column.
  if header and header[0] in ('', 'Unnamed: 0'):
    header, rows = header[1:], [header[1:]] + [r[1:] for r in rows[1:]]
  missing = [c for c in required if c not in header]
  if missing:
    raise _error(path.parent, f'{path.name} lacks the columns {missing} (it has {header})')
  bad = [i + 2 for i, r in enumerate(rows[1:]) if len(r) != len(header)]
  if bad:
    raise _error(path.parent, f'{path.name} lines {bad[:5]} do not have {len(header)} fields')
  return header, rows[1:]


def _read_layout(directory: pathlib.Path):
  """[(flax layer, param, start, end, shape)] in layout order, validated."""
  path = directory / 'layout.csv'
  if not path.exists():
    raise _error(directory, 'layout.csv is missing')
  header, rows = _header(_open_csv(path), path, _LAYOUT_COLUMNS)
  col = {c: header.index(c) for c in _LAYOUT_COLUMNS}
  entries, counts, tf_layers = [], {'conv2d': 0, 'dense': 0}, {}
  expected_start = 0
  for line, row in enumerate(rows, start=2):
    name = row[col['varname']]
    match = _VARNAME.match(name)
    if not match:
      raise _error(directory, f'layout.csv line {line}: {name!r} is not a conv2d or dense '
                   'kernel or bias; only the plain CNN of the Small CNN Zoo is supported')
    kind, suffix, param = match.groups()
    tf_layer = kind + (suffix or '')
    if tf_layer not in tf_layers:
      tf_layers[tf_layer] = f'{_FLAX_LAYER[kind]}_{counts[kind]}'
      counts[kind] += 1
    try:
      start, end = int(row[col['start_idx']]), int(row[col['end_idx']])
      shape = tuple(int(d) for d in ast.literal_eval(row[col['shape']]))
    except (ValueError, SyntaxError, TypeError) as e:
      raise _error(directory, f'layout.csv line {line}: unreadable ({e})') from e
    if start != expected_start or end - start != int(np.prod(shape)):
      raise _error(directory, f'layout.csv line {line}: {name} spans [{start}, {end}) but '
                   f'should start at {expected_start} and hold {int(np.prod(shape))} values')
    expected_start = end
    entries.append((tf_layers[tf_layer], param, start, end, shape, name))
  return entries, expected_start


def _parse(value: str):
  try:
    number = float(value)
  except ValueError:
    return value
  return int(number) if number.is_integer() and re.fullmatch(r'-?\d+', value.strip()) else number


def _column(values: list[str]) -> np.ndarray:
  parsed = [_parse(v) for v in values]
  if all(isinstance(v, int) for v in parsed):
    return np.asarray(parsed, np.int64)
  if all(isinstance(v, (int, float)) or v == '' for v in parsed):  # '' is a missing number
    return np.asarray([np.nan if v == '' else v for v in parsed], np.float64)
  if set(values) <= {'True', 'False'}:
    return np.asarray([v == 'True' for v in values])
  return np.asarray(values)


def read_small_cnn_zoo(directory: str | os.PathLike, *, rows: Sequence[int] | None = None,
                       input_shape: Sequence[int] | None = None, padding: str | None = None,
                       strides: int | None = None, activation_column: str | None = None,
                       log: Callable[[str], None] | None = None) -> zoo_lib.Zoo:
  """Reads a zoo in the Small CNN Zoo format into a `Zoo`. Host-side.

  The weights are memory-mapped, so `rows` can pick a part of the full 270,000-row files.
  What the format does not record is settled as `small_cnn_zoo_architecture` says: these
  arguments first, then `arch.json` beside layout.csv, then `config.*` columns, then defaults.

  Args:
    directory: holds weights.npy, layout.csv and metrics.csv.gz (or metrics.csv), and
      optionally arch.json.
    rows: indices of the rows to read; None for all.
    input_shape: (H, W, C) of the members' images; by default `config.input_shape`, or from
      `config.dataset` (MNIST and Fashion-MNIST 28x28, CIFAR-10 and SVHN 32x32, digits 8x8,
      grey).
    padding: 'SAME' or 'VALID' of every convolution; by default `config.padding`, else 'VALID'
      (Keras' default, what the published zoos used).
    strides: of every convolution; by default `config.cnn_stride`, else 2.
    activation_column: the metrics column naming each run's activation ('relu' or 'tanh');
      by default `config.activation`. Copied into the table's `activation`.
    log: called with a description of the architecture and where each part came from, and
      with the rows dropped (see Returns); without it, dropped rows are a `UserWarning`.

  Returns:
    A `Zoo` with one width. Its metrics hold every metrics.csv column (`config.` stripped) and
    `member` (one id per `modeldir`, in order of appearance), `snapshot` (the row's rank by
    `step` within its run), `row` (the row of weights.npy), `width`, and `epoch` when the file
    has one (else -1). Rows whose weights are not all finite or whose `test_accuracy` is
    missing (diverged runs) are dropped, and reported with their count and `row` numbers.

  Raises:
    ZooError: a file is missing, or the files disagree with each other or with the format (a
      metrics column of `step`, `test_accuracy`, ... holding text, naming the lines), or
      the architecture is inconsistent (a feature map vanishes, shapes do not chain): raised
      before any weights are unflattened, naming the layer and the flag that fixes it.
  """
  directory = pathlib.Path(directory)
  entries, n_params = _read_layout(directory)
  layers = arch_lib.layers_from_layout(directory, entries)
  weights_path = directory / 'weights.npy'
  if not weights_path.exists():
    raise _error(directory, 'weights.npy is missing')
  try:
    weights = np.load(weights_path, mmap_mode='r', allow_pickle=False)
  except (OSError, ValueError) as e:
    raise _error(directory, f'weights.npy is unreadable ({e})') from e
  if weights.ndim != 2 or weights.shape[1] != n_params:
    raise _error(directory, f'weights.npy has shape {weights.shape}, but layout.csv describes '
                 f'{n_params} parameters per row')
  metrics_path = next((directory / n for n in ('metrics.csv.gz', 'metrics.csv')
                       if (directory / n).exists()), None)
  if metrics_path is None:
    raise _error(directory, 'metrics.csv.gz (or metrics.csv) is missing')
  try:
    header, lines = _header(_open_csv(metrics_path), metrics_path, _METRIC_COLUMNS)
  except (OSError, EOFError, UnicodeDecodeError, csv.Error) as e:
    raise _error(directory, f'{metrics_path.name} is unreadable ({e})') from e
  if len(lines) != weights.shape[0]:
    raise _error(directory, f'{metrics_path.name} has {len(lines)} rows but weights.npy has '
                 f'{weights.shape[0]}: they must be row-aligned')
  index = np.arange(weights.shape[0]) if rows is None else np.asarray(rows, np.int64)

  table = {}
  for j, name in enumerate(header):
    key = name[len('config.'):] if name.startswith('config.') else name
    table[key] = _column([line[j] for line in lines])
    if name in _METRIC_COLUMNS[1:] and table[key].dtype.kind not in 'iuf':
      bad = [i + 2 for i, v in enumerate(table[key]) if not isinstance(_parse(v), (int, float))]
      raise _error(directory, f'{metrics_path.name} column {name} must hold numbers, but lines '
                   f'{bad[:5]} hold {[lines[i - 2][j] for i in bad[:5]]}; fix or remove them')
  if 'member' not in table:  # our own exports keep their member ids
    _, member = np.unique(table['modeldir'], return_inverse=True)
    first_seen = np.unique(member, return_index=True)[1]  # ids in order of first appearance
    table['member'] = np.argsort(np.argsort(first_seen))[member]
  order = np.lexsort((table['step'], table['member']))
  snapshot = np.empty(len(order), np.int64)
  run_start = np.searchsorted(table['member'][order], table['member'][order])
  snapshot[order] = np.arange(len(order)) - run_start
  table['snapshot'] = snapshot
  table['row'] = np.arange(len(order))
  table['width'] = np.full(len(order), layers['width'])
  table.setdefault('epoch', np.full(len(order), -1))
  table = {k: v[index] for k, v in table.items()}

  arch = arch_lib.resolve(directory, layers, table, {
      'input_shape': input_shape, 'padding': padding, 'strides': strides,
      'activation_column': activation_column})
  if log is not None:
    log(arch.describe())
  table['activation'] = table[arch.activation_column].astype(str)

  block = np.asarray(weights[np.sort(index)] if rows is not None else weights, np.float32)
  if rows is not None:  # back to the requested order
    block = block[np.argsort(np.argsort(index))]
  keep = finite.finite_rows(block) & np.isfinite(table['test_accuracy'])
  if not keep.all():  # diverged runs: a NaN row would poison every batch it lands in
    message = (f'Small CNN Zoo {directory}: dropped {finite.describe_rows(table["row"][~keep])} '
               'of weights.npy holding NaN or infinite weights or no test_accuracy')
    if log is None:
      warnings.warn(message, stacklevel=2)
    else:
      log(message)
    block, table = block[keep], {k: v[keep] for k, v in table.items()}
  params: dict[str, dict[str, np.ndarray]] = {}
  for layer, param, start, end, shape, _ in entries:
    params.setdefault(layer, {})[param] = block[:, start:end].reshape(len(block), *shape)
  return zoo_lib.Zoo({arch.width: {'params': params}}, {arch.width: table}, arch.input_shape,
                     arch.model_kwargs(), None)


def _layout_rows(variables) -> list[tuple[str, str, tuple[int, ...]]]:
  """[(TF varname, flax layer, param, shape)] in TF order: layers in order, bias then kernel."""
  layers = variables['params']

  def key(layer):
    kind, number = layer.rsplit('_', 1)
    return (kind != 'Conv', int(number))  # convolutions first, then Dense

  out = []
  for layer in sorted(layers, key=key):
    kind, number = layer.rsplit('_', 1)
    tf_name = _TF_LAYER[kind] + ('' if number == '0' else f'_{number}')
    for param in ('bias', 'kernel'):
      shape = tuple(int(d) for d in np.shape(layers[layer][param])[1:])
      out.append((f'sequential/{tf_name}/{param}:0', layer, param, shape))
  return out


def write_small_cnn_zoo(zoo: zoo_lib.Zoo, directory: str | os.PathLike, *,
                        width: int | None = None) -> pathlib.Path:
  """Writes one width of a `Zoo` in the Small CNN Zoo format. Host-side.

  Hyperparameters become `config.*` columns (plus `config.num_units`, `config.num_layers`,
  `config.cnn_stride`, `config.padding`, `config.input_shape` and `config.dataset`, which
  `read_small_cnn_zoo` uses to rebuild the architecture), `modeldir` is `member_<id>`, and
  `epoch` and `diverged` are kept as extra columns.

  Args:
    zoo: the zoo.
    directory: created if needed; existing files of the format are replaced.
    width: which width to write (weights.npy holds one architecture); needed when the zoo has
      several.

  Returns:
    The directory.
  """
  if width is None:
    if len(zoo.widths) != 1:
      raise ValueError(f'the zoo has widths {zoo.widths}; pass width=... (weights.npy holds '
                       'one architecture)')
    width = zoo.widths[0]
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  variables, table = zoo.params[width], zoo.metrics[width]
  layout = _layout_rows(variables)
  n = len(table['member'])
  blocks, lines, start = [], [list(_LAYOUT_COLUMNS)], 0
  for tf_name, layer, param, shape in layout:
    block = np.asarray(variables['params'][layer][param], np.float32).reshape(n, -1)
    blocks.append(block)
    lines.append([tf_name, start, start + block.shape[1], str(shape)])
    start += block.shape[1]
  with open(directory / 'layout.csv', 'w', newline='') as f:
    csv.writer(f).writerows(lines)
  np.save(directory / 'weights.npy', np.concatenate(blocks, axis=1))

  config = {'num_units': np.full(n, width),
            'num_layers': np.full(n, zoo.model_kwargs['num_layers']),
            'cnn_stride': np.full(n, zoo.model_kwargs['strides']),
            'padding': np.full(n, zoo.model_kwargs['padding']),
            'input_shape': np.full(n, str(tuple(zoo.input_shape))),
            'dnn_architecture': np.full(n, 'cnn')}
  if zoo.config is not None:
    config['dataset'] = np.full(n, zoo.config.dataset)
    config['random_seed'] = np.full(n, zoo.config.seed)
    config['epochs'] = np.full(n, zoo.config.snapshot_epochs[-1])
  extras = ('member', 'epoch', 'diverged')
  skip = set(_METRIC_COLUMNS) | {'snapshot', 'width', 'row', *extras}
  for name, values in table.items():
    if name not in skip:
      config[name] = values
  columns = {**{f'config.{k}': v for k, v in sorted(config.items())},
             'modeldir': np.asarray([f'member_{int(m):05d}' for m in table['member']]),
             **{c: table[c] for c in _METRIC_COLUMNS[1:]}}
  for extra in extras:
    if extra in table:
      columns[extra] = table[extra]
  text = io.StringIO()
  writer = csv.writer(text)
  writer.writerow(list(columns))
  for i in range(n):
    writer.writerow([_format(columns[c][i]) for c in columns])
  with gzip.open(directory / 'metrics.csv.gz', 'wt', newline='') as f:
    f.write(text.getvalue())
  return directory


def _format(value) -> str:
  if isinstance(value, (float, np.floating)):
    return repr(float(value))  # shortest round-tripping text
  if isinstance(value, (np.bool_, bool)):
    return str(bool(value))
  return str(value)

"""`gmn-convert` (also `python -m gmn_jax.convert`): a Flax checkpoint to a parameter graph.

Reads orbax checkpoints, `flax.serialization` msgpack files and transformers model directories
(`config.json` + `flax_model.msgpack`). Examples::

    # a transformers model directory (save_pretrained, or downloaded): the config names the model
    gmn-convert bert-tiny/ -o bert.npz
    # a flax.serialization msgpack file (to_bytes of the params) of your own model
    gmn-convert params.msgpack --model mypkg.models:CNN --input-shape 1,28,28,1

    # a plain Dense/Conv chain: no model code needed
    gmn-convert ckpt/ -o graph.npz --draw graph.png
    # any Flax model: name its class, its constructor arguments and an example input shape
    gmn-convert ckpt/ --model mypkg.models:CNN --model-args '{"features": 32}' \\
        --input-shape 1,28,28,1 -o graph.npz
    # every step of a CheckpointManager directory (a training trajectory) into one file
    gmn-convert ckpt/ --model mypkg.models:CNN --input-shape 1,28,28,1 --all-steps

Read the file back with `gmn_jax.load_graphs(path)`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import sys
import tempfile
import textwrap
import warnings

# Only light imports here: `--help` and argument errors answer before jax is imported.
from gmn_jax.io.exit_codes import EXIT_CODES, UNWRITABLE, USAGE, ConversionError

__all__ = ['ConversionError', 'Converted', 'EXIT_CODES', 'convert_checkpoint', 'main']


def __getattr__(name: str):
  if name in ('Converted', 'convert_checkpoint'):  # imports jax: only when asked for
    from gmn_jax.io import convert  # pylint: disable=g-import-not-at-top
    return getattr(convert, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')

_EPILOG = 'exit codes:\n' + '\n'.join(
    textwrap.fill(text, 88, initial_indent=f'  {code}  ', subsequent_indent='     ')
    for code, text in EXIT_CODES.items()) + """

A transformers model directory needs no --model: its Flax class is the one config.json names
(architectures, else model_type), built without random initialisation and called as its
wrapper calls it on 8 token ids (or an image/audio of the config's size; --input-shape, once
per required input, overrides). A .msgpack file (flax.serialization.to_bytes of the params or
of a whole TrainState) is read like one orbax item.

Without --model the checkpoint must hold a plain chain of Dense/Conv layers
({layer: {'kernel': ..., 'bias': ...}}, linen or nnx); --activation, --padding, --strides,
--spatial-shape and --order describe what the weights do not record. With --model, the class
is imported (the current folder is on the path), built with --model-args (nnx modules get
rngs=nnx.Rngs(0)) and traced on zeros of --input-shape; the variables are found anywhere in
the checkpoint item (e.g. inside a saved TrainState) by their paths and shapes.

Read the output with gmn_jax.load_graphs(path)."""


def _shape(text: str):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  dims, _, dtype = text.partition(':')
  try:
    shape = tuple(int(d) for d in dims.replace('x', ',').split(',') if d.strip())
    return jax.ShapeDtypeStruct(shape, jnp.dtype(dtype or 'float32'))
  except (ValueError, TypeError) as e:
    raise argparse.ArgumentTypeError(f'{text!r} is not a shape like 1,28,28,1 or 1,16:int32 '
                                     f'({e})') from e


def _json_object(text: str):
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise argparse.ArgumentTypeError(f'not valid JSON ({e}): {text}') from e
  if not isinstance(value, dict):
    raise argparse.ArgumentTypeError(f'expected a JSON object like {{"features": 32}}: {text}')
  return _tuples(value)


def _tuples(value):
  """JSON lists as tuples: Flax module fields must be hashable."""
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, dict):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def _ints(text: str):
  try:
    return tuple(int(d) for d in text.split(','))
  except ValueError as e:
    raise argparse.ArgumentTypeError(f'{text!r} is not a list of integers like 28,28') from e


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='gmn-convert', description='Convert a checkpoint of a Flax model (linen or nnx; an '
      'orbax checkpoint, a flax.serialization msgpack file, or a transformers model directory) '
      'into its parameter graph: writes a .npz (gmn_jax.load_graphs), prints a summary, '
      'optionally draws it.', epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('checkpoint', help='a CheckpointManager directory, one step folder, one item '
                 'folder, a .msgpack file, or a transformers model directory')
  p.add_argument('-o', '--output', help='the .npz to write (default: <checkpoint name>.graph.npz '
                 'in the current folder)')
  p.add_argument('--draw', metavar='PNG', help='also draw the graph (the last step) to this file')
  g = p.add_argument_group('model (leave out for a plain Dense/Conv chain or a transformers '
                           'directory)')
  g.add_argument('--model', metavar='PACKAGE.MODULE:CLASS', help='the model class (or a '
                 'function returning a module)')
  g.add_argument('--model-args', type=_json_object, default={}, metavar='JSON',
                 help='constructor keyword arguments, e.g. \'{"features": [32, 64]}\'')
  g.add_argument('--input-shape', type=_shape, action='append', default=[],
                 metavar='SHAPE[:DTYPE]', help='an example input, e.g. 1,28,28,1 or 1,16:int32 '
                 '(repeat for several inputs)')
  g.add_argument('--call-kwargs', type=_json_object, default={}, metavar='JSON',
                 help='keyword arguments of the call held fixed, e.g. \'{"train": false}\'')
  g = p.add_argument_group('which checkpoint')
  steps = g.add_mutually_exclusive_group()
  steps.add_argument('--step', type=int, help='the step of a CheckpointManager directory '
                     '(default: the latest)')
  steps.add_argument('--all-steps', action='store_true', help='convert every step into one '
                     'file (a training trajectory)')
  g.add_argument('--item', help='the item of a step to read (default: the one holding arrays)')
  g = p.add_argument_group('plain chains (without --model)')
  g.add_argument('--activation', default='relu', help='between layers (default relu)')
  g.add_argument('--padding', default='SAME', help='of every convolution (default SAME)')
  g.add_argument('--strides', type=int, default=1, help='of every convolution (default 1)')
  g.add_argument('--spatial-shape', type=_ints, help='input spatial size of a CNN, e.g. 28,28')
  g.add_argument('--order', type=lambda t: t.split(','), help='layer names in order, '
                 'comma-separated (default: natural order)')
  p.add_argument('-q', '--quiet', action='store_true', help='print only errors')
  return p


def _default_output(checkpoint: str) -> pathlib.Path:
  path = pathlib.Path(checkpoint).expanduser().resolve()
  name = path.stem if path.is_file() else path.name
  name = name if not name.isdigit() else f'{path.parent.name}_{name}'
  return pathlib.Path(f'{name or "checkpoint"}.graph.npz')


def _check_output(path: pathlib.Path, flag: str) -> None:
  """Raises ConversionError(9) unless `path` can be written (checked before converting)."""
  folder = path.parent
  if path.is_dir():
    raise ConversionError(UNWRITABLE, f'{flag} {path} is a folder; name a file in it (e.g. '
                          f'{path / ("graph" + (path.suffix or ".npz"))}).')
  if not folder.is_dir():
    what = 'is not a folder' if folder.exists() else 'does not exist'
    raise ConversionError(UNWRITABLE, f'{flag} {path}: the folder {folder} {what}; create it '
                          f'(mkdir -p {folder}) or write somewhere else.')
  if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
    raise ConversionError(UNWRITABLE, f'{flag} {path}: no permission to write '
                          f'{path if path.exists() else "into " + str(folder)}; write somewhere '
                          'else.')


def _check_drawing(path: pathlib.Path) -> None:
  """Raises ConversionError(2) unless matplotlib is installed and writes `path`'s file type."""
  try:
    from matplotlib.backend_bases import FigureCanvasBase  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ConversionError(USAGE, '--draw needs matplotlib: pip install matplotlib (or leave '
                          'out --draw).') from e
  kinds = FigureCanvasBase.get_supported_filetypes()
  kind = path.suffix[1:].lower()
  if kind not in kinds:
    what = f'.{kind} is not a file type matplotlib writes' if kind else 'has no file extension'
    raise ConversionError(USAGE, f'--draw {path}: {what}; use one of '
                          f'{", ".join(sorted(kinds))} (e.g. --draw graph.png).')


def _quiet_logs() -> None:
  # orbax and absl log every restore; keep the output to what the user asked for.
  logging.getLogger('absl').setLevel(logging.ERROR)
  warnings.filterwarnings('ignore', module='orbax')
  try:
    from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
    absl_logging.set_verbosity(absl_logging.ERROR)
  except ImportError:
    pass


def _draw(conv, path: pathlib.Path) -> pathlib.Path:
  """Draws the last graph into a temporary file beside `path` (renamed once all is written)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')  # a file, never a window
  from gmn_jax.io.draw import draw_graph  # pylint: disable=g-import-not-at-top
  from gmn_jax.io.graph_files import file_mode  # pylint: disable=g-import-not-at-top
  fd, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix=path.suffix, dir=path.parent)
  os.close(fd)
  try:
    title = f'{conv.model}' + (f', step {conv.steps[-1]}' if conv.steps[-1] is not None else '')
    draw_graph(conv.graphs[-1], conv.pg, path=tmp, title=title)
    os.chmod(tmp, file_mode())
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise
  return pathlib.Path(tmp)


def main(argv=None) -> int:
  """Runs the command; returns its exit code (see `EXIT_CODES`). Writes nothing unless 0."""
  args = parser().parse_args(argv)
  output = pathlib.Path(args.output) if args.output else _default_output(args.checkpoint)
  if output.suffix != '.npz':  # as save_graphs names it
    output = output.with_name(output.name + '.npz')
  drawing = pathlib.Path(args.draw) if args.draw else None
  try:
    _check_output(output, '-o')
    if drawing is not None:
      _check_drawing(drawing)
      _check_output(drawing, '--draw')
  except ConversionError as e:
    print(f'gmn-convert: error: {e}', file=sys.stderr)
    return e.exit_code
  _quiet_logs()
  from gmn_jax.io import graph_files  # pylint: disable=g-import-not-at-top
  from gmn_jax.io.convert import convert_checkpoint  # pylint: disable=g-import-not-at-top
  try:
    conv = convert_checkpoint(
        args.checkpoint, args.model, model_args=args.model_args, inputs=args.input_shape,
        call_kwargs=args.call_kwargs, step=args.step, all_steps=args.all_steps, item=args.item,
        activation=args.activation, padding=args.padding, strides=args.strides,
        spatial_shape=args.spatial_shape, order=args.order)
  except ConversionError as e:
    print(f'gmn-convert: error: {e}', file=sys.stderr)
    return e.exit_code
  steps = conv.steps if any(s is not None for s in conv.steps) else None
  drawn = written = None
  try:
    drawn = _draw(conv, drawing) if drawing is not None else None
    written = graph_files.save_graphs(output, conv.graphs, pg=conv.pg, steps=steps, metadata={
        'checkpoint': str(pathlib.Path(args.checkpoint).expanduser().resolve()),
        'items': [str(i) for i in conv.items], 'model': args.model or conv.model,
        'model_args': args.model_args, 'variables_at': conv.prefix})
    if drawn is not None:
      os.replace(drawn, drawing)
  except OSError as e:  # checked above, but the disk can still refuse (full, permissions)
    for path in (drawn, written):
      if path is not None:
        pathlib.Path(path).unlink(missing_ok=True)
    print(f'gmn-convert: error: cannot write {e.filename or output}: {e.strerror or e}; nothing '
          'was written.', file=sys.stderr)
    return UNWRITABLE
  if not args.quiet:
    print(conv.report())
    print(f'wrote {written} ({len(conv.graphs)} graph{"s" * (len(conv.graphs) != 1)}; '
          'read it with gmn_jax.load_graphs)')
    if drawing is not None:
      print(f'drew {drawing}')
  return 0

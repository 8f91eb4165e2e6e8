"""The exit codes of `gmn-convert` and the error that carries one (`ConversionError`).

Imports nothing heavy (no jax), so that `gmn-convert --help` and argument errors answer at once.
"""

from __future__ import annotations

EXIT_CODES = {
    0: 'the graph was written',
    2: 'usage: bad or missing arguments (argparse), an ambiguous checkpoint (pass --step or '
       '--item), or a --draw file type matplotlib cannot write',
    3: 'the checkpoint path does not exist',
    4: 'the path is not a checkpoint gmn-convert can read: not an orbax checkpoint, a corrupt '
       'or truncated file (a msgpack file or an orbax step that cannot be read, or parameters '
       'holding NaN or infinite values), or a transformers directory without Flax weights '
       '(flax_model.msgpack)',
    5: 'the checkpoint holds no parameters (no floating-point arrays)',
    6: 'the model (--model package.module:ClassName) cannot be imported or built',
    7: 'the parameters do not fit the model (missing paths or different shapes)',
    8: 'the model cannot be converted: not a plain Dense/Conv chain (without --model), the model '
       'fails on the example input, or it computes something a parameter graph cannot '
       'represent',
    9: 'an output cannot be written: the folder of -o or --draw is missing or not writable, or '
       'the path is a folder (nothing is written)',
}
USAGE, MISSING, NOT_CHECKPOINT, NO_PARAMETERS, NOT_IMPORTABLE, MISMATCH, UNSUPPORTED, UNWRITABLE = (
    2, 3, 4, 5, 6, 7, 8, 9)


class ConversionError(Exception):
  """A checkpoint cannot be converted; `exit_code` is what `gmn-convert` exits with."""

  def __init__(self, exit_code: int, message: str):
    super().__init__(message)
    self.exit_code = exit_code

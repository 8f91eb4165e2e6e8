"""A stand-in for `torchvision` when running the official neural-graphs INR classification
code (`benchmarks/inr_official.py`) where no torchvision build matches the installed torch:
the code imports `transforms` and `datasets` at module level but INR classification never
calls them. Anything used raises. Not part of gmn_jax."""


def _unavailable(name):
  def fail(*args, **kwargs):
    raise RuntimeError(f'torchvision.{name} is a stub here (benchmarks/official_stubs/no_torchvision)')
  return fail

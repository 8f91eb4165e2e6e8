"""Prints pip constraints that pin every core dependency of pyproject.toml at its floor.

Each `name>=X` in `[project] dependencies` becomes `name==X`, so the floors are written once
(in pyproject.toml) and CI installs exactly them: `pip install -c <this output> -e .`.
With `--check` it instead exits non-zero unless the running interpreter has every core
dependency installed at exactly its floor (so a pin that did not take is not a silent pass).

Raises:
  SystemExit: if a core dependency has no `>=` floor (an unpinnable requirement), or with
    `--check`, if an installed version differs from its floor.
"""

from importlib import metadata
import pathlib
import re
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def floors(pyproject: pathlib.Path = ROOT / 'pyproject.toml') -> list[str]:
  """`name==X` for each `name>=X` of pyproject's `[project] dependencies`, in their order."""
  deps = tomllib.loads(pyproject.read_text())['project']['dependencies']
  pins = []
  for dep in deps:
    match = re.fullmatch(r'\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([^,;\s]+)\s*(,.*)?', dep)
    if match is None:
      raise SystemExit(f'{dep!r}: every core dependency needs a `>=` floor for the floor run')
    name = match.group(1).split('[')[0]
    pins.append(f'{name}=={match.group(2)}')
  return pins


def check() -> None:
  """Exits with the list of core dependencies not installed at exactly their floor."""
  from packaging.version import Version  # in the checked venv (matplotlib needs it)
  wrong = []
  for pin in floors():
    name, floor = pin.split('==')
    installed = metadata.version(name)
    if Version(installed) != Version(floor):  # 2.0 == 2.0.0, as pip's `==` reads it
      wrong.append(f'{name}: floor {floor}, installed {installed}')
  if wrong:
    raise SystemExit('not at the floor: ' + '; '.join(wrong))
  print(f'all {len(floors())} core dependencies at their floors')


if __name__ == '__main__':
  if sys.argv[1:] == ['--check']:
    check()
  else:
    sys.stdout.write(''.join(f'{pin}\n' for pin in floors()))

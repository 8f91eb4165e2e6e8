"""The package's layout: stages import only earlier stages (graphs <- metanets <- training <-
tasks, with zoos and io beside the flow; see docs/layout.md), no module imports itself
back through others (no import cycle, even inside a stage), and no module is over 400 lines.
Imports inside functions count too."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).parent.parent / 'gmn_jax'
# What each stage may import (besides itself and the stage-free `progress`, `mesh` and `_lazy`).
STAGE_FREE = {'progress', 'mesh', '_lazy'}
ALLOWED = {
    'graphs': set(),
    'metanets': {'graphs'},
    'zoos': {'graphs'},
    'training': {'graphs', 'metanets'},
    'io': {'graphs', 'metanets'},
    'tasks': {'graphs', 'metanets', 'zoos', 'training', 'io'},
    'testing': {'graphs'},
}


def _imported_stages(path: pathlib.Path) -> set[str]:
  stages = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module == 'gmn_jax':
      names = [f'gmn_jax.{a.name}' for a in node.names]  # from gmn_jax import progress
    elif isinstance(node, ast.ImportFrom):
      names = [node.module or '']
    else:
      continue
    for name in names:
      parts = name.split('.')
      if parts[0] == 'gmn_jax':
        stages.add(parts[1] if len(parts) > 1 else 'gmn_jax')  # gmn_jax itself: everything
  return stages


def _stage_modules():
  for stage in ALLOWED:
    root = PACKAGE / stage
    yield from ((stage, p) for p in (sorted(root.rglob('*.py')) if root.is_dir()
                                     else [root.with_suffix('.py')]))


@pytest.mark.parametrize('stage,path', list(_stage_modules()),
                         ids=lambda x: str(x.relative_to(PACKAGE)) if isinstance(x, pathlib.Path)
                         else x)
def test_imports_point_to_earlier_stages(stage, path):
  later = _imported_stages(path) - ALLOWED[stage] - STAGE_FREE - {stage}
  assert not later, f'{path.relative_to(PACKAGE)} imports {sorted(later)}, a later stage'


def test_the_check_sees_a_later_import(tmp_path):
  bad = tmp_path / 'bad.py'
  bad.write_text('import gmn_jax\nfrom gmn_jax import zoos\n\n\ndef f():\n'
                 '  from gmn_jax.training import fit\n')
  assert _imported_stages(bad) == {'gmn_jax', 'zoos', 'training'}


def _module_name(path: pathlib.Path, root: pathlib.Path) -> str:
  parts = path.relative_to(root.parent).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: pathlib.Path, name: str, modules: set[str]) -> set[str]:
  """The package's modules that `path` (module `name`) imports, at any level of the file
  (function-level imports count): `from a import b` is `a.b` when that is a module, else
  `a`; a module's parent packages are not counted (importing `a.b` runs `a/__init__`, but a
  package importing its own sub-modules is how it re-exports them)."""
  package = name if path.name == '__init__.py' else name.rpartition('.')[0]
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      targets = [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:  # relative import
        anchor = package.split('.')
        anchor = anchor[:len(anchor) - node.level + 1]
        base = '.'.join(anchor + ([base] if base else []))
      targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base
                 for a in node.names]
    else:
      continue
    out.update(t for t in targets if t in modules and t != name)
  return out


def import_cycles(root: pathlib.Path) -> list[list[str]]:
  """Every cycle of module-level imports among the modules of package `root`: a module that
  imports a module that ... imports it back. Each cycle once, as a list of module names."""
  paths = {_module_name(p, root): p for p in sorted(root.rglob('*.py'))}
  graph = {name: _imports(path, name, set(paths)) for name, path in paths.items()}
  cycles, state, stack = [], {}, []

  def visit(name):
    state[name] = 'open'
    stack.append(name)
    for other in sorted(graph[name]):
      if state.get(other) == 'open':
        cycles.append(stack[stack.index(other):] + [other])
      elif other not in state:
        visit(other)
    stack.pop()
    state[name] = 'done'

  for name in sorted(graph):
    if name not in state:
      visit(name)
  return cycles


def test_no_import_cycles():
  cycles = import_cycles(PACKAGE)
  assert not cycles, 'import cycles:\n' + '\n'.join(' -> '.join(c) for c in cycles)


def test_the_cycle_check_sees_a_cycle(tmp_path):
  package = tmp_path / 'pkg'
  (package / 'sub').mkdir(parents=True)
  (package / '__init__.py').write_text('')
  (package / 'sub' / '__init__.py').write_text('from pkg.sub import a\n')
  (package / 'sub' / 'a.py').write_text('import numpy\nfrom pkg import b\n')
  (package / 'b.py').write_text('def f():\n  from pkg.sub.a import g  # hidden in a function\n')
  (package / 'c.py').write_text('from pkg import b\n')  # imports into the cycle: not in one
  assert import_cycles(package) == [['pkg.b', 'pkg.sub.a', 'pkg.b']]
  (package / 'b.py').write_text('def f():\n  return 1\n')
  assert import_cycles(package) == []


MAX_LINES = 400


def test_modules_are_short():
  long = {str(p.relative_to(PACKAGE)): n for p in sorted(PACKAGE.rglob('*.py'))
          if (n := len(p.read_text().splitlines())) > MAX_LINES}
  assert not long, f'modules over {MAX_LINES} lines (split them by concept): {long}'

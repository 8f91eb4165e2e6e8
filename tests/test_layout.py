"""The package's stages import only earlier stages: graphs ← metanets ← training ← tasks, with
zoos and io beside the flow (see the README's Layout). Imports inside functions count too."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).parent.parent / 'gmn_jax'
# What each stage may import (besides itself and the stage-free `progress` and `mesh`).
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
  later = _imported_stages(path) - ALLOWED[stage] - {stage, 'progress', 'mesh'}
  assert not later, f'{path.relative_to(PACKAGE)} imports {sorted(later)}, a later stage'


def test_the_check_sees_a_later_import(tmp_path):
  bad = tmp_path / 'bad.py'
  bad.write_text('import gmn_jax\nfrom gmn_jax import zoos\n\n\ndef f():\n'
                 '  from gmn_jax.training import fit\n')
  assert _imported_stages(bad) == {'gmn_jax', 'zoos', 'training'}

"""The Colab notebooks in `colab/` run top to bottom (small size) and are committed clean.

Each notebook is executed with nbclient in a fresh kernel, in a temporary folder, with
`GMN_NOTEBOOK_SMALL=1` (its first code cell reads it and shrinks every experiment), offline:
the install cell skips `pip install` because gmn_jax is importable. A notebook passes when no
cell raises (their cells assert what they show) and it shows the pictures it promises.
"""

from __future__ import annotations

import base64
import os
import pathlib
import sys

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')

COLAB = pathlib.Path(__file__).parent.parent / 'colab'
NOTEBOOKS = sorted(COLAB.glob('*.ipynb'))
# Where every notebook's first cell installs gmn_jax from (where the package is not installed).
_INSTALL_URL = 'git+https://github.com/gmn-jax/gmn_jax'
# The least number of pictures each notebook must show.
PICTURES = {'quickstart.ipynb': 3, 'checkpoints.ipynb': 3, 'generalization.ipynb': 2,
            'inr_editing.ipynb': 2, 'diverse_architectures.ipynb': 2,
            'inr_classification.ipynb': 2, 'learning_to_optimize.ipynb': 2}


def test_every_notebook_is_listed():
  assert {p.name for p in NOTEBOOKS} == set(PICTURES)


@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_clean_with_install_cell(path):
  """No outputs (so none can be stale), and a first code cell that installs and reads the
  small-size switch."""
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == 'code']
  for cell in code:
    assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
  first = code[0].source
  assert _INSTALL_URL in first and 'find_spec' in first
  assert "os.environ.get('GMN_NOTEBOOK_SMALL')" in first


@pytest.mark.slow  # the task notebooks rerun their e2e tests' tiny configs
@pytest.mark.parametrize('path', NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path, tmp_path, monkeypatch):
  import gmn_jax  # pylint: disable=g-import-not-at-top
  if path.name == 'generalization.ipynb' and not hasattr(gmn_jax, 'train_and_evaluate'):
    pytest.skip('gmn_jax.train_and_evaluate is not public yet')
  monkeypatch.setenv('GMN_NOTEBOOK_SMALL', '1')
  monkeypatch.setenv('JAX_PLATFORMS', 'cpu')
  # The kernel is started as `python`: make it this interpreter (the one with gmn_jax).
  monkeypatch.setenv('PATH', os.pathsep.join([os.path.dirname(sys.executable),
                                              os.environ.get('PATH', '')]))
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',
                                   resources={'metadata': {'path': str(tmp_path)}})
  client.execute()
  pictures = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs
              if 'image/png' in o.get('data', {})]
  out = os.environ.get('GMN_NOTEBOOK_PICTURES')  # set it to look at what the notebook drew
  if out:
    pathlib.Path(out).mkdir(parents=True, exist_ok=True)
    for i, picture in enumerate(pictures):
      (pathlib.Path(out) / f'{path.stem}_{i}.png').write_bytes(
          base64.b64decode(picture['data']['image/png']))
  assert len(pictures) >= PICTURES[path.name]



def _gmn_jax_imports() -> set[str]:
  """The gmn_jax modules the notebooks import (`import gmn_jax.x`, `from gmn_jax.x import`)."""
  modules = set()
  for path in NOTEBOOKS:
    for cell in nbformat.read(path, as_version=4).cells:
      for line in cell.source.splitlines() if cell.cell_type == 'code' else ():
        words = line.split()
        if len(words) > 1 and words[0] in ('import', 'from') and words[1].startswith('gmn_jax'):
          modules.add(words[1].rstrip(','))
  return modules


@pytest.mark.slow  # builds a wheel from a clone
def test_install_cell_installs_what_the_notebooks_import(tmp_path):
  """The install cell's requirement, pointed at a clone of this commit instead of GitHub, gives
  a package from which every gmn_jax module the notebooks import imports, away from the
  checkout (so nothing outside the installed package, e.g. `experiments/`, is relied on)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  root = COLAB.parent
  if not (root / '.git').exists():
    pytest.skip('not a git checkout')
  first = next(c for c in nbformat.read(NOTEBOOKS[0], as_version=4).cells
               if c.cell_type == 'code').source
  assert f"'gmn-jax @ {_INSTALL_URL}'" in first
  clone = tmp_path / 'clone'
  subprocess.run(['git', 'clone', '-q', str(root), str(clone)], check=True)
  # pip's requirement parser wants a host in a git URL: file://localhost/<path>.
  requirement = f'gmn-jax @ git+file://localhost{clone}'
  site = tmp_path / 'site'
  subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target',
                  str(site), requirement], check=True)
  modules = sorted(_gmn_jax_imports())
  assert 'gmn_jax' in modules and len(modules) > 3, modules
  code = ('import importlib, gmn_jax\n'
          f'assert gmn_jax.__file__.startswith({str(site)!r}), gmn_jax.__file__\n'
          f'for m in {modules!r}: importlib.import_module(m)\n'
          'gmn_jax.trace\n')
  env = dict(os.environ, PYTHONPATH=str(site))
  subprocess.run([sys.executable, '-c', code], check=True, cwd=tmp_path, env=env)

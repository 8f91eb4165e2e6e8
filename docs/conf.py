"""Sphinx configuration for the gmn_jax documentation (Sphinx + MyST, as jax, flax, optax).

Build (warnings are errors, no network needed):
  python -m sphinx -W --keep-going -b html docs docs/_build/html
"""

import os
import sys

# Document the checkout this file sits in, not an installed copy elsewhere.
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..')))

project = 'gmn_jax'
author = 'gmn_jax contributors'
copyright = '2026, gmn_jax contributors'

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
]

source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']

# MyST: `{py:func}` roles, ``` fences, $math$, heading anchors for in-page links.
myst_enable_extensions = ['colon_fence', 'dollarmath', 'deflist']
myst_heading_anchors = 3

# Google-style docstrings (Args/Returns/Raises).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# `Attributes:` as fields of the class, so a dataclass field is not described twice.
napoleon_use_ivar = True

# Flags here are on whenever present (False included): leave out undoc-members and
# show-inheritance, so only members with a docstring are listed.
autodoc_default_options = {
    'member-order': 'bysource',
}
autodoc_typehints = 'description'
autodoc_class_signature = 'separated'
# Flax dataclass modules carry many generated members; keep the pages to what users call.
autodoc_inherit_docstrings = False

# Single backticks in docstrings are Python names (linked where documented), else code.
default_role = 'py:obj'
# A bare field name (`kernel_size`) can match several classes' attributes; that is not an error.
suppress_warnings = ['ref.python']

# No intersphinx: the build must work with no network.

html_theme = 'furo'
html_title = 'gmn_jax'
html_static_path = []


# Where each name that `gmn_jax` re-exports is documented, in stage order.
_STAGES = ['graphs', 'metanets', 'zoos', 'training', 'io', 'testing', 'mesh',
           'tasks.generalization', 'tasks.diverse_architectures', 'tasks.inr_classification',
           'tasks.inr_editing', 'tasks.learning_to_optimize']


def _reexport_table():
  """A table of `gmn_jax.__all__`, each name linked to the sub-package that documents it."""
  import importlib
  import gmn_jax
  rows = []
  for name in gmn_jax.__all__:
    obj = getattr(gmn_jax, name)
    if isinstance(obj, type(gmn_jax)):
      rows.append(f'| `{name}` | {{py:mod}}`{obj.__name__}` |')
      continue
    for stage in _STAGES:
      module = importlib.import_module(f'gmn_jax.{stage}')
      public = getattr(module, '__all__', None)
      if (name in public) if public is not None else (getattr(module, name, None) is obj):
        rows.append(f'| {{py:obj}}`{name} <gmn_jax.{stage}.{name}>` | '
                    f'{{py:mod}}`gmn_jax.{stage}` |')
        break
    else:
      raise ValueError(f'gmn_jax.{name} is documented in no sub-package: add its stage to '
                       '_STAGES in docs/conf.py')
  return '\n'.join(['| name | documented in |', '|---|---|', *rows])


def _add_reexports(app, docname, source):
  del app
  if docname == 'api/gmn_jax':
    source[0] = source[0].replace('<!-- reexports -->', _reexport_table())


def setup(app):
  app.connect('source-read', _add_reexports)

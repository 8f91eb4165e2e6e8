"""The INR-editing task's methods: a new one is one `REGISTRY` entry.

A builder takes `(config, pg)`: the `EditingConfig` and the SIREN's `ParameterGraph`, and
returns a module mapping a batch of INR graphs to the edited graphs (`metanets.Editor`,
`FlatEditor`). The identity edit has no builder. Editing trains without augmentation.
"""

from __future__ import annotations

from gmn_jax.metanets.editing import Editor, FlatEditor
from gmn_jax.metanets.gmn import GMN
from gmn_jax.metanets.neural_graphs import NGGNN, NGT
from gmn_jax.tasks.registry import Labels, Method


def _common(c):
  return dict(num_layers=c.layers, readout_hidden=c.hidden)


def _gmn(c, pg, index_features=0):
  backbone = GMN(node_dim=c.hidden, edge_dim=c.hidden, **_common(c))
  return Editor(backbone, max_kernel_size=pg.kernel_size, index_features=index_features)


def _nggnn(c, pg):
  return Editor(NGGNN(hidden_dim=c.hidden, **_common(c)), max_kernel_size=pg.kernel_size)


def _ngt(c, pg):
  backbone = NGT(node_dim=c.hidden, edge_dim=c.hidden, num_heads=4, **_common(c))
  return Editor(backbone, max_kernel_size=pg.kernel_size)


def _flat_mlp(c, pg):
  return FlatEditor.for_architecture(pg, hidden=c.flat_hidden)


REGISTRY: dict[str, Method] = {
    'identity': Method('identity edit (no change)', None, graph=False),
    'flat_mlp': Method('flat MLP (Δθ from flat weights)', _flat_mlp, graph=False),
    'gmn': Method('GMN', _gmn),
    'nggnn': Method('NG-GNN', _nggnn),
    'ngt': Method('NG-T', _ngt),
    # Each neuron's index as a feature: not equivariant (the control).
    'gmn_index': Method('GMN + neuron index (not equivariant)',
                        lambda c, pg: _gmn(c, pg, index_features=8)),
}
METHODS = tuple(REGISTRY)
LABELS = Labels(REGISTRY)

"""The learning-to-optimize task's learned optimizers: a new one is one `REGISTRY` entry.

A builder takes the `LearningToOptimizeConfig` and returns an update rule
(`gmn_jax.training.update_rules`). The hand-designed baselines (`HAND_DESIGNED`) are optax's,
tuned by the task.
"""

from __future__ import annotations

from gmn_jax.metanets import GMN, NGGNN
from gmn_jax.tasks.registry import Labels, Method
from gmn_jax.training.optimizer_features import GRAPH_CHANNELS
from gmn_jax.training.update_rules import GraphRule, PerParameterLSTM, PerParameterMLP


def _slots(c):
  return dict(edge_readout='direct', max_kernel_size=GRAPH_CHANNELS * c.max_kernel_size,
              max_param_size=GRAPH_CHANNELS)


def _gmn(c):
  return GraphRule(GMN(node_dim=c.hidden, edge_dim=c.hidden, num_layers=c.num_layers,
                       **_slots(c)), hidden=(32, 32))


def _nggnn(c):
  return GraphRule(NGGNN(hidden_dim=c.hidden, num_layers=c.num_layers, **_slots(c)),
                   hidden=(32, 32))


REGISTRY: dict[str, Method] = {
    'gmn': Method('GMN', _gmn),
    'nggnn': Method('NG-GNN', _nggnn),
    'mlp': Method('per-parameter MLP', lambda c: PerParameterMLP((32, 32)), graph=False),
    'lstm': Method('LSTM', lambda c: PerParameterLSTM(32), graph=False),
}
LEARNED = tuple(REGISTRY)
HAND_DESIGNED = {'adam': 'Adam (tuned)', 'sgdm': 'SGD + momentum (tuned)'}
LABELS = Labels(REGISTRY, HAND_DESIGNED)


def make_rule(method: str, config):
  """The update rule of learned optimizer `method` (a key of `REGISTRY`) for `config`.

  Raises:
    ValueError: an unknown method.
  """
  if method not in REGISTRY:
    raise ValueError(f'unknown method {method!r}; choose from {LEARNED}')
  return REGISTRY[method].build(config)

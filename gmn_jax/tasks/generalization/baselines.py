"""The accuracy-prediction task's baselines that do not train through `fit`: StatNN's
statistics into gradient-boosted trees, and which architecture the flat-weight MLP reads."""

from __future__ import annotations

import jax
import numpy as np

from gmn_jax.metanets.baselines import StatNN
from gmn_jax.tasks.generalization.config import GeneralizationConfig
from gmn_jax.tasks.generalization.data import Data
from gmn_jax.training import metrics as metrics_lib
from gmn_jax.training.graph_set import GraphSet


def statnn_features(graphs: GraphSet, rows: np.ndarray, batch_size: int = 64) -> np.ndarray:
  """`[len(rows), n_features]` StatNN statistics of the rows' graphs (no augmentation: the
  statistics are invariant to neuron permutations)."""
  features = jax.jit(StatNN().features)
  budget = graphs.budget(batch_size)
  return np.concatenate([np.asarray(features(g))[m]
                         for g, _, m in graphs.batches(rows, batch_size, budget)])


def fit_statnn_gbm(config: GeneralizationConfig, data: Data) -> tuple[np.ndarray, int]:
  """StatNN with gradient-boosted trees (Unterthiner et al.'s strongest variant): the number
  of boosting rounds is the one with the best validation Kendall τ, as the networks' epoch.
  Returns the test predictions and that number of rounds."""
  from sklearn.ensemble import HistGradientBoostingRegressor  # pylint: disable=g-import-not-at-top
  x_train, x_val, x_test = (statnn_features(data.graphs, r)
                            for r in (data.train, data.val, data.test))
  targets = data.graphs.targets
  gbm = HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, early_stopping=False,
                                      random_state=config.seed)
  gbm.fit(x_train, targets[data.train])
  rounds = gbm.n_iter_
  if len(data.val):
    taus = [metrics_lib.kendall_tau(targets[data.val], p) for p in gbm.staged_predict(x_val)]
    rounds = int(np.argmax(taus)) + 1
  preds = next(p for i, p in enumerate(gbm.staged_predict(x_test), 1) if i == rounds)
  return np.clip(preds, 0.0, 1.0), rounds


def flat_mlp_architecture(data: Data) -> tuple[int | None, str]:
  """The flat MLP reads one architecture: the one with the most training rows, if the test
  set has it too; otherwise it cannot be evaluated and the reason says why."""
  counts = np.bincount(data.graphs.template_of[data.train], minlength=len(data.architectures))
  arch = int(np.argmax(counts))
  if not np.any(data.graphs.template_of[data.test] == arch):
    return None, ('not applicable: it reads one architecture\'s flattened weights, and the '
                  'test networks have other architectures')
  width, act = data.architectures[arch]
  note = '' if len(data.architectures) == 1 else (
      f'trained and tested on width {width}, {act} only (one architecture: '
      f'{counts[arch]} training rows)')
  return arch, note

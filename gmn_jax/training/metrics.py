"""Regression metrics for predicted accuracies (Kendall τ, R², MSE) and classification metrics
(accuracy, cross-entropy). Host-side (numpy)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def kendall_tau(y_true: np.ndarray, y_pred: np.ndarray) -> float:
  """Kendall's τ-b rank correlation; 0.0 when either side is constant."""
  if len(y_true) < 2 or np.ptp(y_pred) == 0 or np.ptp(y_true) == 0:
    return 0.0
  return float(stats.kendalltau(y_true, y_pred).statistic)


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
  """Coefficient of determination, 1 - SS_res / SS_tot."""
  total = np.sum((y_true - np.mean(y_true)) ** 2)
  return float(1.0 - np.sum((y_true - y_pred) ** 2) / total) if total > 0 else 0.0


def regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
  """{'kendall_tau', 'r2', 'mse'} of predictions against targets."""
  y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
  return {'kendall_tau': kendall_tau(y_true, y_pred), 'r2': r2(y_true, y_pred),
          'mse': float(np.mean((y_true - y_pred) ** 2))}


def classification(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
  """{'accuracy', 'cross_entropy'} of `[n, classes]` logits against `[n]` class ids."""
  labels = np.asarray(labels).astype(np.int64)
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(axis=1, keepdims=True)
  log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
  return {'accuracy': float(np.mean(logits.argmax(axis=1) == labels)),
          'cross_entropy': float(-np.mean(log_probs[np.arange(len(labels)), labels]))}


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
  """`[true class, predicted class]` counts."""
  out = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(out, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
  return out

"""Regression metrics for predicted accuracies: Kendall τ, R², MSE. Host-side (numpy)."""

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

"""Regression metrics per emotion dimension (numpy, on host predictions)."""

from __future__ import annotations

import numpy as np

DIMENSIONS = ('valence', 'arousal')
METRICS = ('mse', 'rmse', 'mae', 'r2')


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
  """MSE, RMSE, MAE and R^2 (coefficient of determination) of 1-D arrays.

  R^2 = 1 - SS_res / SS_tot; with constant targets it is 1.0 for a perfect prediction
  and 0.0 otherwise (scikit-learn's convention).
  """
  y_true = np.asarray(y_true, np.float64)
  y_pred = np.asarray(y_pred, np.float64)
  if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
    raise ValueError(f'need equal non-empty 1-D arrays, got {y_true.shape}, {y_pred.shape}')
  err = y_pred - y_true
  mse = float(np.mean(err ** 2))
  ss_res = float(np.sum(err ** 2))
  ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
  if ss_tot > 0:
    r2 = 1.0 - ss_res / ss_tot
  else:
    r2 = 1.0 if ss_res == 0 else 0.0
  return {'mse': mse, 'rmse': float(np.sqrt(mse)), 'mae': float(np.mean(np.abs(err))),
          'r2': r2}


def per_dimension(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, float]]:
  """[n, 2] (valence, arousal) arrays -> {dimension: {metric: value}}."""
  return {d: regression_metrics(y_true[:, i], y_pred[:, i])
          for i, d in enumerate(DIMENSIONS)}

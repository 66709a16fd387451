"""Metrics and losses against scikit-learn / numpy on fresh random inputs."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from mer_jax import losses, metrics


@pytest.mark.parametrize('n', [2, 17, 500])
def test_regression_metrics_match_sklearn(n):
  rng = np.random.default_rng()
  y = rng.uniform(0, 1, n)
  p = np.clip(y + rng.normal(0, rng.uniform(0.01, 0.5), n), 0, 1)
  m = metrics.regression_metrics(y, p)
  assert m['mse'] == pytest.approx(skm.mean_squared_error(y, p), rel=1e-12)
  assert m['rmse'] == pytest.approx(np.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
  assert m['mae'] == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
  assert m['r2'] == pytest.approx(skm.r2_score(y, p), rel=1e-10, abs=1e-12)


def test_r2_edge_cases_match_sklearn():
  y = np.full(5, 0.3)
  assert metrics.regression_metrics(y, y)['r2'] == skm.r2_score(y, y)
  p = y + 0.1
  assert metrics.regression_metrics(y, p)['r2'] == skm.r2_score(y, p)


def test_per_dimension_columns():
  rng = np.random.default_rng()
  y, p = rng.uniform(size=(30, 2)), rng.uniform(size=(30, 2))
  out = metrics.per_dimension(y, p)
  assert out['valence']['r2'] == pytest.approx(skm.r2_score(y[:, 0], p[:, 0]))
  assert out['arousal']['mae'] == pytest.approx(skm.mean_absolute_error(y[:, 1], p[:, 1]))


def test_mse_loss_with_mask_matches_numpy():
  rng = np.random.default_rng()
  p, y = rng.uniform(size=(12, 2)), rng.uniform(size=(12, 2))
  mask = (rng.uniform(size=12) > 0.3).astype(np.float32)
  mask[0] = 1
  got = float(losses.mse(jnp.asarray(p), jnp.asarray(y), jnp.asarray(mask)))
  want = np.mean((p[mask > 0] - y[mask > 0]) ** 2)
  assert got == pytest.approx(want, rel=1e-5)
  assert float(losses.mse(jnp.asarray(p), jnp.asarray(y))) == pytest.approx(
      skm.mean_squared_error(y, p), rel=1e-5)


def test_mismatched_shapes_rejected():
  with pytest.raises(ValueError):
    metrics.regression_metrics(np.zeros(3), np.zeros(4))

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
  return {m: float(row_metric(m, y_true, y_pred)) for m in METRICS}


def per_dimension(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, float]]:
  """[n, 2] (valence, arousal) arrays -> {dimension: {metric: value}}."""
  return {d: regression_metrics(y_true[:, i], y_pred[:, i])
          for i, d in enumerate(DIMENSIONS)}


def pearson(y_true: np.ndarray, y_pred: np.ndarray) -> float:
  """Pearson correlation r (NaN when either side is constant)."""
  return float(row_metric('pearson', np.asarray(y_true, np.float64),
                          np.asarray(y_pred, np.float64)))


def ccc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
  """Lin's concordance correlation coefficient, population moments:
  2 cov(y, p) / (var(y) + var(p) + (mean(y) - mean(p))^2)."""
  return float(row_metric('ccc', np.asarray(y_true, np.float64),
                          np.asarray(y_pred, np.float64)))


FULL_METRICS = ('mse', 'rmse', 'mae', 'r2', 'pearson', 'ccc')
HIGHER_IS_BETTER = {'mse': False, 'rmse': False, 'mae': False, 'r2': True,
                    'pearson': True, 'ccc': True}


def all_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
  """MSE, RMSE, MAE, R^2, Pearson r and CCC of 1-D arrays."""
  out = regression_metrics(y_true, y_pred)
  out['pearson'] = pearson(y_true, y_pred)
  out['ccc'] = ccc(y_true, y_pred)
  return out


def row_metric(metric: str, y: np.ndarray, p: np.ndarray) -> np.ndarray:
  """`metric` (one of FULL_METRICS) of each row: [..., n] float64 targets and
  predictions -> [...]. The one implementation behind `regression_metrics`, `pearson`,
  `ccc` and `bootstrap_ci` (all resamples at once). Constant targets: R^2 1.0 for a
  perfect prediction, else 0.0 (scikit-learn's convention); a constant side: Pearson
  NaN; zero CCC denominator: NaN."""
  err = p - y
  if metric in ('mse', 'rmse'):
    mse = np.mean(err ** 2, axis=-1)
    return mse if metric == 'mse' else np.sqrt(mse)
  if metric == 'mae':
    return np.mean(np.abs(err), axis=-1)
  yc = y - y.mean(axis=-1, keepdims=True)
  with np.errstate(divide='ignore', invalid='ignore'):  # Degenerate rows: see where.
    if metric == 'r2':
      ss_res, ss_tot = np.sum(err ** 2, axis=-1), np.sum(yc ** 2, axis=-1)
      return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    pc = p - p.mean(axis=-1, keepdims=True)
    if metric == 'pearson':
      r = np.sum(yc * pc, axis=-1) / np.sqrt(np.sum(yc ** 2, axis=-1) *
                                             np.sum(pc ** 2, axis=-1))
      constant = (np.ptp(y, axis=-1) == 0) | (np.ptp(p, axis=-1) == 0)
      return np.where(constant, np.nan, np.clip(r, -1.0, 1.0))
    if metric == 'ccc':
      denom = (y.var(axis=-1) + p.var(axis=-1)
               + (y.mean(axis=-1) - p.mean(axis=-1)) ** 2)
      return np.where(denom > 0, 2 * np.mean(yc * pc, axis=-1) / denom, np.nan)
  raise ValueError(f'unknown metric {metric!r}; the metrics are {FULL_METRICS}')


def bootstrap_ci(y_true: np.ndarray, y_preds: np.ndarray, metric: str,
                 n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
                 ) -> tuple[float, float]:
  """Percentile bootstrap CI over songs of a metric averaged over runs (seeds).

  Args:
    y_true: [n] targets.
    y_preds: [runs, n] predictions of each run for the same songs; every resample draws
      the same songs for all runs.
  Returns:
    (low, high) of the `confidence` interval of mean_run metric(y_true, y_pred_run).
  """
  from scipy import stats
  y_true = np.asarray(y_true, np.float64)
  y_preds = np.atleast_2d(np.asarray(y_preds, np.float64))

  def statistic(idx, axis=-1):  # idx [..., n]: all resamples at once (vectorized);
    # one at a time, scipy's Python loop took 15 s of a demo experiment's tables.
    return np.mean([row_metric(metric, y_true[idx], p[idx]) for p in y_preds], axis=0)

  res = stats.bootstrap((np.arange(y_true.size),), statistic, n_resamples=n_resamples,
                        confidence_level=confidence, method='percentile',
                        vectorized=True, rng=np.random.default_rng(seed))
  return float(res.confidence_interval.low), float(res.confidence_interval.high)


QUADRANT_SOURCES = ('official', 'thresholds')
QUADRANT_SOURCE_TEXT = {  # For reports.
    'official': "the release's own quadrant label where it has one (MERGE's split files, "
                "a manifest's quadrant column), else valence/arousal at 0.5",
    'thresholds': 'valence/arousal of the labels at 0.5'}


def true_quadrants(quadrant: np.ndarray, official: np.ndarray | None, source: str
                   ) -> np.ndarray:
  """[n] true quadrants 0..3 (Q1..Q4) under `config.eval.quadrant_source`.

  Args:
    quadrant: [n] quadrants of the labels at the 0.5 thresholds.
    official: [n] the release's own quadrants, -1 (or NaN) where it has none; None when
      unknown.
    source: 'official' (the release's where it has one, else the thresholds') or
      'thresholds'.
  """
  if source not in QUADRANT_SOURCES:
    raise ValueError(f'config.eval.quadrant_source must be one of {QUADRANT_SOURCES}, '
                     f'got {source!r}')
  q = np.asarray(quadrant, np.int64)
  if source == 'thresholds' or official is None:
    return q
  o = np.asarray(official, np.float64)
  has = np.isfinite(o) & (o >= 0)
  return np.where(has, np.nan_to_num(o, nan=-1), q).astype(np.int64)


def quadrant_centres(train_y: np.ndarray, train_q: np.ndarray) -> np.ndarray:
  """[4, 2] training-label mean (valence, arousal) of each true quadrant (Q1..Q4) from
  labels [n, 2] and quadrants [n] (0..3); a quadrant without training songs gets the
  overall mean."""
  train_y = np.asarray(train_y, np.float64)
  train_q = np.asarray(train_q)
  centres = np.tile(train_y.mean(axis=0), (4, 1))
  for q in range(4):
    if np.any(train_q == q):
      centres[q] = train_y[train_q == q].mean(axis=0)
  return centres


SKILL_METRICS = ('skill_vs_quadrant', 'r2_within_quadrant')


def quadrant_skill(y_true: np.ndarray, y_pred: np.ndarray, centre: np.ndarray
                   ) -> dict[str, float]:
  """What a prediction knows beyond the song's quadrant, for one dimension.

  Args:
    y_true, y_pred: [n] labels and predictions.
    centre: [n] the training mean of each song's true quadrant (`quadrant_centres`):
      the quadrant-centre baseline's prediction.
  Returns:
    skill_vs_quadrant: 1 - MSE(model) / MSE(quadrant centre); negative when the model
      knows less than the quadrant alone.
    r2_within_quadrant: R^2 of (prediction - centre) against (label - centre): how much
      of the variation inside the quadrants the model explains.
  """
  y, p, c = (np.asarray(a, np.float64) for a in (y_true, y_pred, centre))
  mse_c = float(np.mean((y - c) ** 2))
  mse = float(np.mean((y - p) ** 2))
  skill = 1.0 - mse / mse_c if mse_c > 0 else (1.0 if mse == 0 else -np.inf)
  return {'skill_vs_quadrant': skill,
          'r2_within_quadrant': regression_metrics(y - c, p - c)['r2']}


def quadrant_metrics(true_quadrant, valence_pred, arousal_pred) -> dict[str, object]:
  """Quadrants of the predictions (0.5 thresholds) against the true quadrants [n]
  (0..3, see `true_quadrants`): accuracy, macro-F1 and the 4x4 confusion matrix (rows
  true Q1..Q4)."""
  from sklearn import metrics as skm
  from data_prep.manifest import quadrant
  t = [int(q) for q in true_quadrant]
  p = [quadrant(v, a) for v, a in zip(valence_pred, arousal_pred)]
  return {'accuracy': float(skm.accuracy_score(t, p)),
          # Macro over the quadrants present in the truth or the predictions.
          'macro_f1': float(skm.f1_score(t, p, average='macro', zero_division=0)),
          'confusion': skm.confusion_matrix(t, p, labels=[0, 1, 2, 3])}


RECALL_AT = (1, 5, 10)


def retrieval_ranks(similarity: np.ndarray) -> np.ndarray:
  """Rank (1 = best) of each row's matched column: [n, n] similarities (row i's match
  is column i) -> [n] ranks. Rank = 1 + number of other columns scoring higher."""
  s = np.asarray(similarity, np.float64)
  return 1 + np.sum(s > np.diag(s)[:, None], axis=1)


def retrieval_metrics(similarity: np.ndarray) -> dict[str, float]:
  """Cross-modal retrieval on [n, n] similarities (rows audio, columns lyrics; song i
  is row i and column i), both directions, with the random expectation of each.

  Keys: a2l_* (audio query -> lyrics) and l2a_*: r1, r5, r10 (Recall@k, 0..1),
  median_rank, mrr (mean reciprocal rank); random_r1 ... random_median_rank,
  random_mrr; mrr (mean of both directions); n.
  """
  s = np.asarray(similarity, np.float64)
  n = s.shape[0]
  if s.shape != (n, n) or n == 0:
    raise ValueError(f'need a non-empty square similarity matrix, got {s.shape}')
  out = {}
  for name, ranks in (('a2l', retrieval_ranks(s)), ('l2a', retrieval_ranks(s.T))):
    for k in RECALL_AT:
      out[f'{name}_r{k}'] = float(np.mean(ranks <= k))
    out[f'{name}_median_rank'] = float(np.median(ranks))
    out[f'{name}_mrr'] = float(np.mean(1.0 / ranks))
  for k in RECALL_AT:
    out[f'random_r{k}'] = min(k, n) / n
  out['random_median_rank'] = (n + 1) / 2
  out['random_mrr'] = float(np.sum(1.0 / np.arange(1, n + 1)) / n)
  out['mrr'] = 0.5 * (out['a2l_mrr'] + out['l2a_mrr'])
  out['n'] = n
  return out


def matched_auc(similarity: np.ndarray) -> float:
  """ROC AUC of matched (diagonal) against mismatched (off-diagonal) similarities:
  P(a matched pair scores above a mismatched one), ties counted half."""
  from sklearn import metrics as skm
  s = np.asarray(similarity, np.float64)
  matched = np.eye(s.shape[0], dtype=bool)
  return float(skm.roc_auc_score(matched.ravel(), s.ravel()))


def separation_auc(scores: np.ndarray, positive: np.ndarray) -> float:
  """ROC AUC of `scores` [n] for the boolean labels `positive` [n] (NaN when a class
  is absent)."""
  from sklearn import metrics as skm
  positive = np.asarray(positive, bool)
  if positive.all() or not positive.any():
    return float('nan')
  return float(skm.roc_auc_score(positive, np.asarray(scores, np.float64)))


# Gaussian predictions N(mu, sigma^2) per song: proper scores, intervals, calibration.

INTERVAL_LEVELS = (0.5, 0.8, 0.9, 0.95)


def _gaussian_args(y, mu, sigma) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """float64 copies of equal non-empty 1-D arrays; sigma must be positive."""
  y, mu, sigma = (np.asarray(a, np.float64) for a in (y, mu, sigma))
  if not (y.shape == mu.shape == sigma.shape) or y.ndim != 1 or y.size == 0:
    raise ValueError(f'need equal non-empty 1-D arrays, got {y.shape}, {mu.shape}, '
                     f'{sigma.shape}')
  if not np.all(sigma > 0):
    raise ValueError('sigma must be positive')
  return y, mu, sigma


def gaussian_nll_np(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
  """Mean negative log-likelihood in nats of y [n] under N(mu, sigma^2) [n]."""
  y, mu, sigma = _gaussian_args(y, mu, sigma)
  z = (y - mu) / sigma
  return float(np.mean(0.5 * np.log(2 * np.pi) + np.log(sigma) + 0.5 * z ** 2))


def crps_gaussian(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> float:
  """Mean continuous ranked probability score of N(mu, sigma^2) for y (closed form,
  Gneiting & Raftery 2007): sigma * (z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi)),
  z = (y - mu) / sigma. Same units as y; lower is better; MAE for sigma -> 0."""
  from scipy import special
  y, mu, sigma = _gaussian_args(y, mu, sigma)
  z = (y - mu) / sigma
  cdf = special.ndtr(z)
  pdf = np.exp(-0.5 * z ** 2) / np.sqrt(2 * np.pi)
  return float(np.mean(sigma * (z * (2 * cdf - 1) + 2 * pdf - 1 / np.sqrt(np.pi))))


def _coverage_width(y, mu, sigma, level: float) -> tuple[float, float]:
  """Share of y inside the closed central `level` interval mu +- z sigma, mean width."""
  from scipy import special
  half = special.ndtri((1 + level) / 2) * sigma
  inside = (y >= mu - half) & (y <= mu + half)
  return float(np.mean(inside)), float(np.mean(2 * half))


def interval_metrics(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                     levels=INTERVAL_LEVELS) -> dict[str, float]:
  """Central prediction intervals mu +- z_{(1+p)/2} sigma of each level p: coverage_P
  (share of y inside, interval closed) and width_P (mean width), P = 100 p ('50',
  '80', '90', '95' for the default levels). A calibrated model covers about p."""
  y, mu, sigma = _gaussian_args(y, mu, sigma)
  out = {}
  for p in levels:
    cov, width = _coverage_width(y, mu, sigma, p)
    out[f'coverage_{100 * p:g}'] = cov
    out[f'width_{100 * p:g}'] = width
  return out


def sigma_spearman(sigma: np.ndarray, annotator_std: np.ndarray) -> float:
  """Spearman rank correlation (average ranks for ties) of the predicted sigma [n] with
  the annotators' rating std [n], over the songs whose annotator_std is finite.

  NaN when fewer than 3 such songs remain or either side is constant there; callers
  must leave a NaN out of their outputs.
  """
  from scipy import stats
  sigma = np.asarray(sigma, np.float64)
  std = np.asarray(annotator_std, np.float64)
  if sigma.shape != std.shape or sigma.ndim != 1:
    raise ValueError(f'need equal 1-D arrays, got {sigma.shape}, {std.shape}')
  keep = np.isfinite(std) & np.isfinite(sigma)
  s, a = sigma[keep], std[keep]
  if s.size < 3 or np.ptp(s) == 0 or np.ptp(a) == 0:
    return float('nan')
  return float(stats.spearmanr(s, a).statistic)


def uncertainty_metrics(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                        annotator_std: np.ndarray | None = None) -> dict[str, float]:
  """nll, crps and `interval_metrics` of N(mu, sigma^2) [n] for y [n]; plus
  sigma_spearman when `annotator_std` is given and the correlation is defined."""
  out = {'nll': gaussian_nll_np(y, mu, sigma), 'crps': crps_gaussian(y, mu, sigma),
         **interval_metrics(y, mu, sigma)}
  if annotator_std is not None:
    rho = sigma_spearman(sigma, annotator_std)
    if np.isfinite(rho):
      out['sigma_spearman'] = rho
  return out


def mixture(mus: np.ndarray, sigmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Deep-ensemble combination of the Gaussians of several runs: [runs, n] means and
  sigmas -> ([n] mean, [n] sigma) of the equal-weight mixture, moment-matched: mean of
  the means; variance = mean of the variances + population variance of the means."""
  mus = np.atleast_2d(np.asarray(mus, np.float64))
  sigmas = np.atleast_2d(np.asarray(sigmas, np.float64))
  if mus.shape != sigmas.shape:
    raise ValueError(f'need equal [runs, n] arrays, got {mus.shape}, {sigmas.shape}')
  var = np.mean(sigmas ** 2, axis=0) + np.var(mus, axis=0)
  return mus.mean(axis=0), np.sqrt(var)


def calibration_curve(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                      levels=np.linspace(0.05, 0.95, 19)
                      ) -> tuple[np.ndarray, np.ndarray]:
  """(expected, observed) [len(levels)] for a calibration plot: each central interval
  level and the share of y inside that interval (`interval_metrics`' coverage).
  Observed below expected: over-confident sigma; above: under-confident."""
  y, mu, sigma = _gaussian_args(y, mu, sigma)
  expected = np.asarray(levels, np.float64)
  observed = np.array([_coverage_width(y, mu, sigma, p)[0] for p in expected])
  return expected, observed

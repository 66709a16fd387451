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


@pytest.mark.parametrize('n', [5, 60, 1000])
def test_pearson_and_ccc_match_numpy(n):
  rng = np.random.default_rng()
  y = rng.uniform(0, 1, n)
  p = 0.3 + rng.uniform(0.2, 1.2) * y + rng.normal(0, rng.uniform(0.01, 0.4), n)
  r = np.corrcoef(y, p)[0, 1]
  assert metrics.pearson(y, p) == pytest.approx(r, rel=1e-9)
  sx, sy = y.std(), p.std()
  want = 2 * r * sx * sy / (sx ** 2 + sy ** 2 + (y.mean() - p.mean()) ** 2)
  assert metrics.ccc(y, p) == pytest.approx(want, rel=1e-9)
  assert metrics.ccc(y, y) == pytest.approx(1.0)
  assert metrics.ccc(y, y + 0.2) < 1.0 and metrics.pearson(y, y + 0.2) == pytest.approx(1.0)
  assert np.isnan(metrics.pearson(y, np.full(n, 0.5)))


def _ccc(y, p):
  """Lin's CCC from numpy's population moments (np.cov with bias=True)."""
  cov = np.cov(y, p, bias=True)
  return 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (y.mean() - p.mean()) ** 2)


# Each metric computed independently of mer_jax.metrics.
INDEPENDENT = {'mae': skm.mean_absolute_error, 'r2': skm.r2_score,
               'rmse': lambda y, p: np.sqrt(skm.mean_squared_error(y, p)),
               'pearson': lambda y, p: np.corrcoef(y, p)[0, 1], 'ccc': _ccc}


@pytest.mark.parametrize('confidence', [0.95, 0.90])
@pytest.mark.parametrize('metric', ['mae', 'r2', 'rmse', 'pearson', 'ccc'])
def test_bootstrap_ci_replays_scipy_percentile_bootstrap(metric, confidence):
  """The interval replayed with numpy, to rounding: scipy 1.17.1's stats.bootstrap
  (paired=False, one sample: the song indices; batch=None) draws all resamples at once
  as rng.integers(0, n, (n_resamples, n)) from the Generator it is given, evaluates the
  statistic on each row and takes stats.quantile(..., method='linear') at
  (1 - confidence) / 2 and (1 + confidence) / 2, numpy's default percentile."""
  rng = np.random.default_rng()
  n, runs, b = 60, 3, 400
  y = rng.uniform(0, 1, n)
  preds = np.stack([y + rng.normal(0, 0.15, n) for _ in range(runs)])
  seed = int(rng.integers(1 << 30))
  low, high = metrics.bootstrap_ci(y, preds, metric, n_resamples=b, confidence=confidence,
                                   seed=seed)
  idx = np.random.default_rng(seed).integers(0, n, (b, n))  # Same songs for every run.
  fn = INDEPENDENT[metric]
  stats = [np.mean([fn(y[i], p[i]) for p in preds]) for i in idx]
  alpha = (1 - confidence) / 2
  want_low, want_high = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
  assert low == pytest.approx(want_low, rel=1e-12, abs=1e-12)
  assert high == pytest.approx(want_high, rel=1e-12, abs=1e-12)
  point = np.mean([fn(y, p) for p in preds])
  assert low < point < high


def test_row_metric_on_ordinary_and_degenerate_rows():
  """Each row against the independent metrics; rows sklearn/numpy leave undefined get
  the documented conventions (constant targets: R2 1 if perfect else 0; a constant side:
  Pearson NaN)."""
  rng = np.random.default_rng()
  y = rng.uniform(0, 1, (5, 30))
  p = y + rng.normal(0, 0.2, (5, 30))
  y[1] = 0.5  # Constant targets (exact means), imperfect predictions.
  y[2], p[2] = 0.75, 0.75  # Constant and perfect.
  p[3] = 0.25  # Constant predictions.
  for m in ('mae', 'rmse', 'r2', 'pearson', 'ccc'):
    got = metrics.row_metric(m, y, p)
    assert got.shape == (5,)
    for i in (0, 4):
      assert got[i] == pytest.approx(INDEPENDENT[m](y[i], p[i]), rel=1e-12), m
  r2 = metrics.row_metric('r2', y, p)
  assert (r2[1], r2[2]) == (0.0, 1.0)
  assert [metrics.regression_metrics(y[i], p[i])['r2'] for i in (1, 2)] == [0.0, 1.0]
  assert r2[3] == pytest.approx(skm.r2_score(y[3], p[3]), rel=1e-12)
  pearson = metrics.row_metric('pearson', y, p)
  assert np.isnan(pearson[1:4]).all()
  ccc = metrics.row_metric('ccc', y, p)
  assert np.isnan(ccc[2]) and ccc[1] == pytest.approx(0.0)
  assert ccc[3] == pytest.approx(_ccc(y[3], p[3]), rel=1e-12)
  with pytest.raises(ValueError, match='unknown metric'):
    metrics.row_metric('auc', y, p)


def test_quadrant_metrics_match_hand_computation():
  rng = np.random.default_rng()
  vt, at, vp, ap = rng.uniform(size=(4, 300))
  q = lambda v, a: np.where(a >= 0.5, np.where(v >= 0.5, 0, 1), np.where(v >= 0.5, 3, 2))  # noqa: E731
  official = np.where(rng.random(300) < 0.3, rng.integers(0, 4, 300), -1)
  for source in ('official', 'thresholds'):
    t = q(vt, at)
    if source == 'official':
      t = np.where(official >= 0, official, t)
    p = q(vp, ap)
    truth = metrics.true_quadrants(q(vt, at), official, source)
    np.testing.assert_array_equal(truth, t)
    out = metrics.quadrant_metrics(truth, vp, ap)
    assert out['accuracy'] == pytest.approx(np.mean(t == p))
    conf = np.zeros((4, 4), int)
    np.add.at(conf, (t, p), 1)
    np.testing.assert_array_equal(out['confusion'], conf)
    f1 = [2 * conf[k, k] / (conf[k].sum() + conf[:, k].sum()) for k in range(4)]
    assert out['macro_f1'] == pytest.approx(np.mean(f1))
  # No official labels known (NaN, as read from an empty CSV column): the thresholds.
  np.testing.assert_array_equal(
      metrics.true_quadrants(q(vt, at), np.full(300, np.nan), 'official'), q(vt, at))
  with pytest.raises(ValueError, match='quadrant_source'):
    metrics.true_quadrants(q(vt, at), official, 'labels')


def _brute_force_retrieval(sim):
  """Ranks by sorting every query's candidates (descending), numpy only."""
  out = {}
  for name, s in (('a2l', sim), ('l2a', sim.T)):
    ranks = np.array([int(np.where(np.argsort(-row, kind='stable') == i)[0][0]) + 1
                      for i, row in enumerate(s)])
    for k in (1, 5, 10):
      out[f'{name}_r{k}'] = np.mean(ranks <= k)
    out[f'{name}_median_rank'] = np.median(ranks)
    out[f'{name}_mrr'] = np.mean(1 / ranks)
  return out


@pytest.mark.parametrize('n', [1, 4, 13, 60])
def test_retrieval_metrics_match_brute_force(n):
  rng = np.random.default_rng()
  a, t = rng.normal(size=(n, 8)), rng.normal(size=(n, 8))
  sim = a @ t.T + 2.0 * np.eye(n) * rng.uniform()  # Some signal on the diagonal.
  got = metrics.retrieval_metrics(sim)
  for k, v in _brute_force_retrieval(sim).items():
    assert got[k] == pytest.approx(v), k
  assert got['mrr'] == pytest.approx(0.5 * (got['a2l_mrr'] + got['l2a_mrr']))
  # Random expectation: the average over every permutation of the candidates.
  assert got['random_r1'] == pytest.approx(1 / n)
  assert got['random_r10'] == pytest.approx(min(10, n) / n)
  assert got['random_median_rank'] == pytest.approx(np.median(np.arange(1, n + 1)))
  assert got['random_mrr'] == pytest.approx(np.mean(1 / np.arange(1, n + 1)))


def test_random_similarities_score_near_the_random_expectation():
  rng = np.random.default_rng()
  runs = [metrics.retrieval_metrics(rng.normal(size=(50, 50))) for _ in range(200)]
  for k in ('r1', 'r5', 'r10', 'mrr'):
    assert np.mean([r[f'a2l_{k}'] for r in runs]) == pytest.approx(
        runs[0][f"random_{k}"], abs=0.015)


def test_matched_and_separation_auc_match_pair_counting():
  rng = np.random.default_rng()
  n = 20
  sim = rng.normal(size=(n, n)) + np.eye(n) * 1.5
  diag, off = np.diag(sim), sim[~np.eye(n, dtype=bool)]
  want = np.mean([(d > o) + 0.5 * (d == o) for d in diag for o in off])
  assert metrics.matched_auc(sim) == pytest.approx(want)
  scores = np.round(rng.normal(size=30), 1)  # Ties count half.
  labels = rng.uniform(size=30) > 0.5
  labels[:2] = [True, False]
  pos, neg = scores[labels], scores[~labels]
  want = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
  assert metrics.separation_auc(scores, labels) == pytest.approx(want)
  assert np.isnan(metrics.separation_auc(scores, np.ones(30, bool)))


def test_quadrant_skill_matches_pandas_and_sklearn():
  """Skill beyond the quadrant: centres by a pandas groupby of the training labels,
  MSE and R² by scikit-learn, against metrics.quadrant_centres / quadrant_skill and
  the run report's table (report.skill_table)."""
  import pandas as pd
  from mer_jax import report
  rng = np.random.default_rng(18)
  n = 120
  df = pd.DataFrame({'split': rng.choice(['train', 'test'], n, p=[0.7, 0.3]),
                     'valence_true': rng.uniform(size=n), 'arousal_true': rng.uniform(size=n)})
  df["quadrant"] = [report.QUADRANT_NAMES[q] for q in
                    [(0 if v >= .5 else 1) if a >= .5 else (3 if v >= .5 else 2)
                     for v, a in zip(df.valence_true, df.arousal_true)]]
  # An official label that disagrees for some songs, none for others.
  df['official_quadrant'] = np.where(rng.uniform(size=n) < 0.2, 'Q2',
                                     np.where(rng.uniform(size=n) < 0.5, df.quadrant, ''))
  true_q = np.where(df.official_quadrant != '', df.official_quadrant, df.quadrant)
  for d in ('valence', 'arousal'):
    df[f'{d}_pred'] = np.clip(df[f'{d}_true'] + rng.normal(0, 0.15, n), 0, 1)
  train = df[df.split == 'train'].assign(q=true_q[df.split == 'train'])
  got = report.skill_table(df).set_index(['split', 'dimension', 'metric']).value
  for split in ('train', 'test'):
    sel = (df.split == split).to_numpy()
    for d in ('valence', 'arousal'):
      centre = train.groupby('q')[f'{d}_true'].mean()
      c = np.array([centre[q] for q in true_q[sel]])
      y, p = df[f'{d}_true'][sel].to_numpy(), df[f'{d}_pred'][sel].to_numpy()
      skill = 1 - skm.mean_squared_error(y, p) / skm.mean_squared_error(y, c)
      within = skm.r2_score(y - c, p - c)
      assert got[(split, d, 'skill_vs_quadrant')] == pytest.approx(skill, abs=1e-12)
      assert got[(split, d, 'r2_within_quadrant')] == pytest.approx(within, abs=1e-12)
      m = metrics.quadrant_skill(y, p, c)
      assert m['skill_vs_quadrant'] == pytest.approx(skill, abs=1e-12)
  # The quadrant centres predict themselves: skill 0; a model worse than them: < 0.
  y = rng.uniform(size=50)
  c = rng.uniform(size=50)
  assert metrics.quadrant_skill(y, c, c)['skill_vs_quadrant'] == pytest.approx(0.0)
  assert metrics.quadrant_skill(y, 2 * c - y, c)['skill_vs_quadrant'] < 0
  # A quadrant without training songs gets the overall mean.
  cent = metrics.quadrant_centres(np.array([[0.1, 0.2], [0.3, 0.6]]), np.array([0, 0]))
  np.testing.assert_allclose(cent, [[0.2, 0.4]] * 4)


# Gaussian predictions: proper scores, intervals, calibration, ensembles.

def _gaussians(rng, n):
  """float64 (y, mu, sigma) [n], y drawn near mu."""
  mu = rng.uniform(0, 1, n)
  sigma = rng.uniform(0.02, 0.4, n)
  return mu + rng.normal(0, 0.25, n), mu, sigma


def test_gaussian_nll_np_matches_scipy_logpdf_and_the_jax_loss():
  from scipy import stats
  rng = np.random.default_rng(201)
  y, mu, sigma = _gaussians(rng, 300)
  want = -np.mean(stats.norm.logpdf(y, mu, sigma))
  assert metrics.gaussian_nll_np(y, mu, sigma) == pytest.approx(want, rel=1e-12)
  got = float(losses.gaussian_nll(*(jnp.asarray(a[:, None], jnp.float32)
                                    for a in (mu, np.log(sigma ** 2), y))))
  assert got == pytest.approx(want, rel=1e-5)
  with pytest.raises(ValueError, match='sigma'):
    metrics.gaussian_nll_np(y, mu, np.zeros_like(sigma))


def test_crps_gaussian_matches_numerical_integration():
  """CRPS = integral of (F(x) - 1{x >= y})^2 dx, split at y: Phi^2 below, (1 - Phi)^2
  (the survival function squared) above."""
  from scipy import integrate, stats
  rng = np.random.default_rng(202)
  y, mu, sigma = _gaussians(rng, 8)
  want = []
  for yi, m, s in zip(y, mu, sigma):
    below = integrate.quad(lambda x: stats.norm.cdf(x, m, s) ** 2, m - 40 * s, yi,
                           epsabs=1e-13, limit=200)[0] if yi > m - 40 * s else 0.0
    above = integrate.quad(lambda x: stats.norm.sf(x, m, s) ** 2, yi, m + 40 * s,
                           epsabs=1e-13, limit=200)[0] if yi < m + 40 * s else 0.0
    want.append(below + above)
    assert metrics.crps_gaussian([yi], [m], [s]) == pytest.approx(want[-1], rel=1e-7)
  assert metrics.crps_gaussian(y, mu, sigma) == pytest.approx(np.mean(want), rel=1e-7)
  # Narrow Gaussians: the absolute error.
  assert metrics.crps_gaussian(y, mu, np.full(8, 1e-9)) == pytest.approx(
      np.mean(np.abs(y - mu)), rel=1e-6)


def test_interval_metrics_match_scipy_norm_interval():
  from scipy import stats
  rng = np.random.default_rng(203)
  y, mu, sigma = _gaussians(rng, 400)
  got = metrics.interval_metrics(y, mu, sigma)
  assert set(got) == {f'{k}_{p}' for k in ('coverage', 'width') for p in (50, 80, 90, 95)}
  for p in metrics.INTERVAL_LEVELS:
    lo, hi = stats.norm.interval(p, loc=mu, scale=sigma)
    key = round(100 * p)
    inside = (y >= lo) & (y <= hi)
    assert got[f'coverage_{key}'] == pytest.approx(np.mean(inside), abs=1e-12)
    assert got[f'width_{key}'] == pytest.approx(np.mean(hi - lo), rel=1e-12)

  # Closed intervals: y on an endpoint of N(0, 1)'s interval is inside, one ulp out is not.
  for p in metrics.INTERVAL_LEVELS:
    z = stats.norm.ppf((1 + p) / 2)
    on, off = np.array([-z, z]), np.nextafter(np.array([-z, z]), [-np.inf, np.inf])
    key = f'coverage_{round(100 * p)}'
    assert metrics.interval_metrics(on, np.zeros(2), np.ones(2))[key] == 1.0
    assert metrics.interval_metrics(off, np.zeros(2), np.ones(2))[key] == 0.0

def test_interval_and_calibration_coverage_of_the_models_own_gaussians():
  """y drawn from N(mu, sigma): every central interval covers about its level; with sigma
  halved (over-confident) every interval covers less."""
  rng = np.random.default_rng(204)
  n = 20000
  mu = rng.uniform(0, 1, n)
  sigma = rng.uniform(0.02, 0.3, n)
  y = rng.normal(mu, sigma)
  got = metrics.interval_metrics(y, mu, sigma)
  for p in metrics.INTERVAL_LEVELS:
    assert abs(got[f'coverage_{round(100 * p)}'] - p) < 0.01, p
  expected, observed = metrics.calibration_curve(y, mu, sigma)
  np.testing.assert_allclose(expected, np.linspace(0.05, 0.95, 19))
  np.testing.assert_allclose(observed, expected, atol=0.02)
  _, narrow = metrics.calibration_curve(y, mu, sigma / 2)
  assert np.all(narrow < expected)
  # Halving sigma: Phi(z/2) coverage, e.g. 2 Phi(0.98) - 1 = 0.67 for the 95% interval.
  from scipy import stats
  np.testing.assert_allclose(narrow, 2 * stats.norm.cdf(stats.norm.ppf((1 + expected) / 2)
                                                        / 2) - 1, atol=0.02)


def test_sigma_spearman_matches_scipy_and_pandas_with_nans_dropped():
  import pandas as pd
  from scipy import stats
  rng = np.random.default_rng(205)
  n = 80
  std = np.round(rng.uniform(0.05, 0.3, n), 2)  # Ties, ranked by their average.
  sigma = np.round(std + rng.normal(0, 0.05, n), 2)
  std[rng.uniform(size=n) < 0.2] = np.nan
  keep = np.isfinite(std)
  want = stats.spearmanr(sigma[keep], std[keep]).statistic
  got = metrics.sigma_spearman(sigma, std)
  assert got == pytest.approx(want, rel=1e-12)
  assert got == pytest.approx(pd.Series(sigma).corr(pd.Series(std), method='spearman'),
                              rel=1e-12)
  # Undefined: fewer than 3 finite songs, or a constant side.
  few = np.full(n, np.nan)
  few[:2] = [0.1, 0.2]
  assert np.isnan(metrics.sigma_spearman(sigma, few))
  assert np.isnan(metrics.sigma_spearman(np.full(n, 0.1), std))
  assert np.isnan(metrics.sigma_spearman(sigma, np.where(keep, 0.2, np.nan)))


def test_uncertainty_metrics_combines_the_scores():
  rng = np.random.default_rng(206)
  y, mu, sigma = _gaussians(rng, 50)
  std = rng.uniform(0.05, 0.3, 50)
  out = metrics.uncertainty_metrics(y, mu, sigma, std)
  assert out['nll'] == metrics.gaussian_nll_np(y, mu, sigma)
  assert out['crps'] == metrics.crps_gaussian(y, mu, sigma)
  assert out['coverage_90'] == metrics.interval_metrics(y, mu, sigma)['coverage_90']
  assert out['sigma_spearman'] == metrics.sigma_spearman(sigma, std)
  assert 'sigma_spearman' not in metrics.uncertainty_metrics(y, mu, sigma)
  assert 'sigma_spearman' not in metrics.uncertainty_metrics(y, mu, sigma,
                                                             np.full(50, np.nan))


def test_mixture_matches_second_moments_and_sampling():
  rng = np.random.default_rng(207)
  runs, n = 5, 6
  mus = rng.uniform(0, 1, (runs, n))
  sigmas = rng.uniform(0.02, 0.3, (runs, n))
  mu, sigma = metrics.mixture(mus, sigmas)
  # E[x] and E[x^2] of the equal-weight mixture; var = E[x^2] - E[x]^2.
  mean = mus.sum(axis=0) / runs
  second = np.sum(sigmas ** 2 + mus ** 2, axis=0) / runs
  np.testing.assert_allclose(mu, mean, rtol=1e-12)
  np.testing.assert_allclose(sigma, np.sqrt(second - mean ** 2), rtol=1e-10)
  # Monte Carlo: pick a run uniformly per draw, then sample its Gaussian.
  m = 200_000
  pick = rng.integers(0, runs, (m, n))
  cols = np.arange(n)
  draws = rng.normal(mus[pick, cols], sigmas[pick, cols])
  np.testing.assert_allclose(draws.mean(axis=0), mu, atol=3e-3)
  np.testing.assert_allclose(draws.std(axis=0), sigma, rtol=0.01)
  # One run: itself.
  one_mu, one_sigma = metrics.mixture(mus[:1], sigmas[:1])
  np.testing.assert_allclose(one_mu, mus[0])
  np.testing.assert_allclose(one_sigma, sigmas[0])

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

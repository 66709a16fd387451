"""Deep ensembles (mer_jax/ensemble.py, job 'ensemble') on generated run reports: the
mixture against its moments by numerical integration, the scores against scipy and
sklearn, point-head ensembles, and the sweep's results with an uncertainty section."""

import os

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from sklearn.metrics import r2_score

from mer_jax import ensemble
from tests.conftest import tiny_config

SPLITS = {'train': 20, 'validation': 6, 'test': 14}


def _write_run(workdir, rng, truth, sigma=True):
  """A finished run's report: predictions.csv (and history.csv) of random
  predictions around `truth`."""
  df = truth.copy()
  for d in ('valence', 'arousal'):
    # Reflected into 0..1, not clipped: two runs never tie at an end (a tie is sigma 0).
    p = np.abs(df[f'{d}_true'] + rng.normal(0, 0.1, len(df)))
    df[f'{d}_pred'] = 1 - np.abs(1 - p)
    if sigma:
      df[f'{d}_sigma'] = rng.uniform(0.03, 0.25, len(df))
      df[f'{d}_annotator_std'] = truth[f'{d}_std']
  df = df.drop(columns=['valence_std', 'arousal_std'])
  os.makedirs(os.path.join(workdir, 'report'), exist_ok=True)
  df.sample(frac=1, random_state=int(rng.integers(1000))).to_csv(
      os.path.join(workdir, 'report', 'predictions.csv'), index=False)
  pd.DataFrame({'epoch': [1, 2], 'step': [1, 2], 'train_loss': [0.5, 0.4],
                'val_loss': [0.6, 0.5]}).to_csv(
      os.path.join(workdir, 'report', 'history.csv'), index=False)
  return df


def _truth(rng):
  split = np.repeat(list(SPLITS), list(SPLITS.values()))
  n = len(split)
  v, a = rng.uniform(0, 1, n), rng.uniform(0, 1, n)
  return pd.DataFrame({
      'song_id': [f'song{i:03d}' for i in range(n)], 'split': split,
      'quadrant': np.where(a >= 0.5, np.where(v >= 0.5, 'Q1', 'Q2'),
                           np.where(v >= 0.5, 'Q4', 'Q3')),
      'official_quadrant': '', 'valence_true': v, 'arousal_true': a,
      'valence_std': rng.uniform(0.05, 0.2, n), 'arousal_std': rng.uniform(0.05, 0.2, n)})


def _mixture_moments(mus, sigmas):
  """Mean and std of the equal-weight mixture of N(mu_r, sigma_r^2) by quadrature."""
  pdf = lambda x: np.mean(stats.norm.pdf(x, mus, sigmas))  # noqa: E731
  lo, hi = min(mus - 12 * sigmas), max(mus + 12 * sigmas)
  m = integrate.quad(lambda x: x * pdf(x), lo, hi, limit=200)[0]
  var = integrate.quad(lambda x: (x - m) ** 2 * pdf(x), lo, hi, limit=200)[0]
  return m, np.sqrt(var)


def test_ensemble_is_the_moment_matched_mixture_and_scored_as_one_run(tmp_path):
  rng = np.random.default_rng()
  truth = _truth(rng)
  dirs = [str(tmp_path / f'seed{s}') for s in range(3)]
  runs = [_write_run(d, rng, truth).set_index('song_id') for d in dirs]
  tab, mixtures = ensemble.table({'m': dirs})
  mix = mixtures['m'].set_index('song_id')
  test_ids = truth[truth.split == 'test'].song_id
  for d in ('valence', 'arousal'):
    for sid in rng.choice(test_ids, 3, replace=False):
      m, s = _mixture_moments(np.array([r.loc[sid, f'{d}_pred'] for r in runs]),
                              np.array([r.loc[sid, f'{d}_sigma'] for r in runs]))
      assert mix.loc[sid, f'{d}_pred'] == pytest.approx(m, abs=1e-7)
      assert mix.loc[sid, f'{d}_sigma'] == pytest.approx(s, rel=1e-6)
    t = mix.loc[test_ids]
    y, mu, sigma = t[f'{d}_true'], t[f'{d}_pred'], t[f'{d}_sigma']
    e = tab[(tab.kind == 'ensemble') & (tab.dimension == d)].set_index('metric')['mean']
    assert e['r2'] == pytest.approx(r2_score(y, mu), abs=1e-10)
    assert e['nll'] == pytest.approx(-stats.norm.logpdf(y, mu, sigma).mean(), abs=1e-10)
    lo, hi = stats.norm.interval(0.9, mu, sigma)
    assert e['coverage_90'] == pytest.approx(np.mean((y >= lo) & (y <= hi)), abs=1e-12)
    assert e['sigma_spearman'] == pytest.approx(
        stats.spearmanr(sigma, t[f'{d}_annotator_std']).statistic, abs=1e-10)
    # The seeds' rows: each run scored alone, then mean and sample std.
    per = [r2_score(r.loc[test_ids, f'{d}_true'], r.loc[test_ids, f'{d}_pred'])
           for r in runs]
    s = tab[(tab.kind == 'seeds') & (tab.dimension == d)].set_index('metric')
    assert s.loc['r2', 'mean'] == pytest.approx(np.mean(per), abs=1e-10)
    assert s.loc['r2', 'std'] == pytest.approx(np.std(per, ddof=1), abs=1e-10)
    assert s.loc['r2', 'n_seeds'] == 3 and 'nll' in s.index


def test_a_point_head_ensemble_is_scored_on_its_seeds_disagreement(tmp_path):
  rng = np.random.default_rng()
  truth = _truth(rng)
  dirs = [str(tmp_path / f'seed{s}') for s in range(2)]
  runs = [_write_run(d, rng, truth, sigma=False).set_index('song_id') for d in dirs]
  tab, mixtures = ensemble.table({'point': dirs})
  mix = mixtures['point'].set_index('song_id')
  means = np.stack([r.loc[mix.index, 'arousal_pred'] for r in runs])
  np.testing.assert_allclose(mix.arousal_sigma, np.abs(means[0] - means[1]) / 2, atol=1e-12)
  seeds = tab[tab.kind == 'seeds']
  assert 'nll' not in set(seeds.metric) and 'r2' in set(seeds.metric)
  assert 'coverage_90' in set(tab[tab.kind == 'ensemble'].metric)
  # Songs whose two runs agree exactly have sigma 0: no uncertainty scores then.
  for d in dirs:
    p = pd.read_csv(os.path.join(d, 'report', 'predictions.csv'))
    p['valence_pred'] = 0.5
    p.to_csv(os.path.join(d, 'report', 'predictions.csv'), index=False)
  tab, _ = ensemble.table({'point': dirs})
  e = tab[(tab.kind == 'ensemble') & (tab.dimension == 'valence')]
  assert 'r2' in set(e.metric) and 'nll' not in set(e.metric)


def test_job_and_sweep_results_show_the_ensemble_rows(tmp_path):
  from mer_jax import jobs, results
  from mer_jax.jobs import sweep
  rng = np.random.default_rng()
  truth = _truth(rng)
  config = tiny_config(str(tmp_path / 'unused'))
  config.data.source, config.data.manifest = 'manifest', str(tmp_path / 'none.csv')
  config.sweep.models, config.sweep.seeds = ('model4', 'model2'), (0, 1, 2)
  config.sweep.ablation_model, config.sweep.n_bootstrap = '', 50
  workdir = str(tmp_path / 'sweep')
  todo = sweep.runs(config, workdir)
  for r in todo[:-1]:  # model2's seed 2 has not finished.
    _write_run(sweep.run_dir(workdir, r), rng, truth)
  config.job = 'ensemble'
  res = jobs.run(config, workdir)
  assert res.summary == {'rows': {'model4': 3, 'model2': 2},
                         'missing': ['model2-bimodal-seed2']}
  text = open(res.report).read()
  assert '| model4 | ensemble of 3 | valence |' in text
  assert '| model2 | ensemble of 2 | arousal |' in text and 'model2-bimodal-seed2' in text
  folder = os.path.dirname(res.report)
  for f in ('calibration_model4.png', 'calibration_model2.png'):
    with open(os.path.join(folder, f), 'rb') as fh:
      assert fh.read(4) == b'\x89PNG'
  csv = pd.read_csv(os.path.join(folder, 'uncertainty.csv'))
  assert set(csv.kind) == {'seeds', 'ensemble'} and np.isfinite(csv['mean']).all()
  # The sweep's own results.md gets the same section.
  groups = {'model4': [sweep.run_dir(workdir, r) for r in todo[:3]]}
  path = results.summarize(config, str(tmp_path / 'results'), groups, [])
  assert '## Uncertainty and deep ensembles (test)' in open(path).read()
  with pytest.raises(ValueError, match='no finished run'):
    jobs.run(config, str(tmp_path / 'empty'))

"""The dataset audit: Sarle's coefficient against numpy's moments, every statistic
against a pandas computation, and the job on a release laid out like MERGE."""

import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mer_jax import dataset_report
from tests.test_merge import make_merge


def _sarle_numpy(x):
  """b from the central moments, with the adjusted Fisher-Pearson skewness G1 and the
  sample excess kurtosis G2 written out (Joanes & Gill 1998)."""
  n = x.size
  d = x - x.mean()
  m2, m3, m4 = (d ** 2).mean(), (d ** 3).mean(), (d ** 4).mean()
  g1 = np.sqrt(n * (n - 1)) / (n - 2) * m3 / m2 ** 1.5
  g2 = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * (m4 / m2 ** 2 - 3) + 6)
  return (g1 ** 2 + 1) / (g2 + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def test_bimodality_coefficient_matches_numpy_moments():
  rng = np.random.default_rng(11)
  for n in (4, 7, 50, 500):
    for x in (rng.uniform(size=n), rng.beta(0.3, 0.3, size=n), rng.normal(size=n)):
      assert dataset_report.bimodality_coefficient(x) == pytest.approx(_sarle_numpy(x),
                                                                       rel=1e-10)
  two_modes = np.concatenate([rng.normal(0.2, 0.03, 300), rng.normal(0.8, 0.03, 300)])
  assert dataset_report.bimodality_coefficient(two_modes) > 5 / 9
  assert dataset_report.bimodality_coefficient(rng.normal(size=2000)) < 5 / 9
  assert np.isnan(dataset_report.bimodality_coefficient(np.ones(9)))
  assert np.isnan(dataset_report.bimodality_coefficient(np.arange(3.0)))


def _frame(n=80, seed=0):
  rng = np.random.default_rng(seed)
  v, a = rng.uniform(size=n), rng.uniform(size=n)
  v[:5] = [0.4, 0.6, 0.45, 0.55, 0.3999]  # Band edges: closed bands.
  q = np.where(a >= 0.5, np.where(v >= 0.5, 0, 1), np.where(v >= 0.5, 3, 2))
  official = np.where(rng.uniform(size=n) < 0.2, rng.integers(0, 4, n), q)
  official[rng.uniform(size=n) < 0.3] = -1
  std = rng.uniform(0.05, 0.3, (n, 2))
  std[rng.uniform(size=n) < 0.25] = np.nan
  return pd.DataFrame({
      'song_id': [f's{i}' for i in range(n)],
      'split': rng.choice(['train', 'validation', 'test'], n, p=[0.6, 0.2, 0.2]),
      'valence': v.astype(np.float32), 'arousal': a.astype(np.float32), 'quadrant': q,
      'official_quadrant': official, 'valence_std': std[:, 0], 'arousal_std': std[:, 1],
      'frames': rng.integers(20, 65, n), 'source_seconds': rng.uniform(1, 45, n)})


def test_statistics_match_pandas():
  df = _frame()
  params = type('P', (), {'hop_length': 512, 'sample_rate': 22050, 'num_frames': 64})
  stats = dataset_report.statistics(df, {'train': 2, '': 3}, params)
  assert np.isfinite(stats.value).all()
  got = {(r.split, r.statistic, r.dimension): r.value for r in stats.itertuples()}
  for split in ('train', 'validation', 'test', 'all'):
    g = df if split == 'all' else df[df.split == split]
    assert got[split, 'songs', ''] == len(g)
    assert got[split, 'skipped', ''] == {'train': 2, 'all': 5}.get(split, 0)
    for d in ('valence', 'arousal'):
      assert got[split, 'mean', d] == pytest.approx(g[d].mean(), rel=1e-6)
      assert got[split, 'std', d] == pytest.approx(g[d].std(), rel=1e-6)
      assert got[split, 'median', d] == pytest.approx(g[d].median(), rel=1e-6)
      assert got[split, 'band_0.4_0.6', d] == pytest.approx(g[d].between(0.4, 0.6).mean())
      assert got[split, 'band_0.45_0.55', d] == pytest.approx(
          g[d].between(0.45, 0.55).mean())
      s = g[f'{d}_std'].dropna()
      assert got[split, 'std_songs', d] == len(s)
      assert got[split, 'std_median', d] == pytest.approx(s.median())
      assert got[split, 'std_max', d] == pytest.approx(s.max())
    either = g.valence.between(0.4, 0.6) | g.arousal.between(0.4, 0.6)
    assert got[split, 'band_0.4_0.6', 'either'] == pytest.approx(either.mean())
    counts = g.quadrant.value_counts()
    for k in range(4):
      assert got[split, f'quadrant_Q{k + 1}', ''] == counts.get(k, 0)
    off = g[g.official_quadrant >= 0]
    assert got[split, 'official_agreement', ''] == pytest.approx(
        (off.official_quadrant == off.quadrant).mean())
    assert got[split, 'source_seconds_max', ''] == pytest.approx(g.source_seconds.max())
    assert got[split, 'prepared_seconds_median', ''] == pytest.approx(
        (g.frames * 512 / 22050).median())
    assert got[split, 'shorter_than_window', ''] == (g.frames < 64).sum()
  # The test inputs put 0.4 and 0.6 (closed band) in, 0.3999 out.
  assert got['all', 'band_0.4_0.6', 'valence'] == pytest.approx(
      ((df.valence >= np.float32(0.4)) & (df.valence <= np.float32(0.6))).mean())
  hist = dataset_report.histograms(df)
  for (split, d), h in hist.groupby(['split', 'dimension']):
    g = df if split == 'all' else df[df.split == split]
    want = pd.cut(g[d], np.linspace(0, 1, 21), include_lowest=True).value_counts(sort=False)
    assert h['count'].tolist() == want.tolist()
    assert h['count'].sum() == len(g)


def test_job_on_a_merge_layout_release_prints_the_band_shares(tmp_path):
  from configs import exp1
  from mer_jax import jobs
  rng = np.random.default_rng(5)
  n = 40
  # Valence curated away from the middle (as the thesis says of MERGE); arousal not.
  v = np.where(rng.uniform(size=n) < 0.5, rng.uniform(0.05, 0.38, n),
               rng.uniform(0.62, 0.95, n)).round(3)
  a = rng.uniform(0.05, 0.95, n).round(3)
  names = ('Q1', 'Q2', 'Q3', 'Q4')
  q = [names[0 if y >= 0.5 and x >= 0.5 else 1 if y >= 0.5 else 3 if x >= 0.5 else 2]
       for x, y in zip(v, a)]
  q[0] = names[(names.index(q[0]) + 1) % 4]  # One official label off its values.
  parts = ['train'] * 28 + ['validate'] * 6 + ['test'] * 6
  rows = [(f'MT{i:04d}', f'MT{i:04d}', q[i], a[i], v[i], parts[i]) for i in range(n)]
  base = make_merge(str(tmp_path), rows)
  short = os.path.join(base, 'audio', q[3], 'MT0003.mp3')
  sf.write(short, 0.1 * rng.standard_normal(22050).astype(np.float32), 22050, format='MP3')
  config = exp1.get_config()
  config.data.root = str(tmp_path)
  config.data.data_dir = str(tmp_path / 'prepared')
  config.data.num_workers = 1
  config.audio.num_frames = 64  # 1.49 s: the 1 s song is shorter.
  config.job = 'dataset_report'
  result = jobs.run(config, str(tmp_path / 'w'))
  md = open(result.report).read()
  in_band = int(((a >= 0.4) & (a <= 0.6)).sum())
  assert f'- valence in [0.4, 0.6]: 0 of {n} songs (0.0%) - the band is empty.' in md
  assert f'- arousal in [0.4, 0.6]: {in_band} of {n} songs ({in_band / n:.1%})' in md
  stats = pd.read_csv(tmp_path / 'w' / 'report' / 'dataset_report.csv',
                      keep_default_na=False)
  got = {(r.split, r.statistic, r.dimension): r.value for r in stats.itertuples()}
  assert got['all', 'official_agreement', ''] == pytest.approx(39 / 40)
  assert got['all', 'shorter_than_window', ''] == 1
  assert got['train', 'songs', ''] == 28 and got['test', 'songs', ''] == 6
  assert got['all', 'source_seconds_min', ''] == pytest.approx(1.0, abs=0.06)
  assert got['all', 'source_seconds_max', ''] == pytest.approx(2.0, abs=0.06)
  av = pd.read_csv(os.path.join(base, 'merge_bimodal_complete_av_values.csv'))
  assert got['all', 'mean', 'valence'] == pytest.approx(av.Valence.mean(), rel=1e-6)
  assert got['all', 'quadrant_Q1', ''] == ((av.Valence >= 0.5) & (av.Arousal >= 0.5)).sum()
  for f in ('dataset_histograms.png', 'dataset_scatter.png', 'dataset_histograms.csv'):
    assert (tmp_path / 'w' / 'report' / f).stat().st_size > 1000
  assert not [f for f in os.listdir(tmp_path / 'w' / 'report') if f.startswith('.')]

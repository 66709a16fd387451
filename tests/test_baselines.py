"""Baselines against a hand computation with pandas on generated labels."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from configs import default
from mer_jax import baselines
from tests.test_merge import make_merge


def _manifest(tmp_path, n=90):
  rng = np.random.default_rng()
  df = pd.DataFrame({'song_id': [f's{i}' for i in range(n)],
                     'audio_path': [f'nowhere/s{i}.mp3' for i in range(n)],  # Never read.
                     'lyrics_path': '', 'valence': rng.uniform(size=n).round(4),
                     'arousal': rng.beta(2, 5, size=n).round(4),
                     'split': rng.choice(['train', 'validation', 'test'], n, p=[.6, .2, .2])})
  df.to_csv(tmp_path / 'manifest.csv', index=False)
  return df


def _hand(test, pred_v, pred_a):
  rows = []
  for d, p in (('valence', pred_v), ('arousal', pred_a)):
    err = p - test[d]
    mse = (err ** 2).mean()
    rows.append({'dimension': d, 'mse': mse, 'rmse': np.sqrt(mse), 'mae': err.abs().mean(),
                 'r2': 1 - (err ** 2).sum() / ((test[d] - test[d].mean()) ** 2).sum()})
  return pd.DataFrame(rows).set_index('dimension')


def test_baselines_match_pandas(tmp_path):
  df = _manifest(tmp_path)
  config = default.get_config()
  config.seed = 7
  config.data.manifest = str(tmp_path / 'manifest.csv')
  got = baselines.run(config, str(tmp_path / 'w'))
  written = pd.read_csv(tmp_path / 'w' / 'report' / 'baselines.csv')
  assert list(written.columns) == ['baseline', 'dimension', 'mse', 'rmse', 'mae', 'r2']
  assert (tmp_path / 'w' / 'report' / 'baselines.md').read_text().count('|') > 30
  train, test = df[df.split == 'train'], df[df.split == 'test'].reset_index(drop=True)
  quad = lambda d: np.where(d.arousal >= .5, np.where(d.valence >= .5, 1, 2),  # noqa: E731
                            np.where(d.valence >= .5, 4, 3))
  train = train.assign(q=quad(train))
  centres = train.groupby('q')[['valence', 'arousal']].mean()
  tq = quad(test)
  rnd = np.random.default_rng(7).uniform(0, 1, size=(len(test), 2))
  want = {
      'mean': _hand(test, train.valence.mean(), train.arousal.mean()),
      # A quadrant without training songs falls back to the overall training mean.
      'quadrant_centre': _hand(
          test, centres.valence.reindex(tq).fillna(train.valence.mean()).to_numpy(),
          centres.arousal.reindex(tq).fillna(train.arousal.mean()).to_numpy()),
      'random': _hand(test, rnd[:, 0], rnd[:, 1])}
  for r in written.itertuples():
    for m in ('mse', 'rmse', 'mae', 'r2'):
      assert getattr(r, m) == pytest.approx(want[r.baseline].loc[r.dimension, m],
                                            rel=1e-4, abs=1e-6), (r.baseline, r.dimension, m)
  assert len(got) == 6


def test_exp1_baselines_command_reads_labels_only(tmp_path):
  make_merge(str(tmp_path), audio=False)
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  done = subprocess.run([sys.executable, 'launch.py', '--config=configs/exp1_baselines.py',
                         f'--config.data.root={tmp_path}', f'--workdir={tmp_path}/w'],
                        cwd=repo, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  df = pd.read_csv(tmp_path / 'w' / 'report' / 'baselines.csv')
  assert set(df.baseline) == {'random', 'mean', 'quadrant_centre'} and len(df) == 6
  assert np.isfinite(df[['mse', 'rmse', 'mae']]).all().all()


def test_quadrant_without_training_songs_uses_the_mean():
  train_y = np.array([[0.8, 0.2], [0.9, 0.1], [0.2, 0.9]])  # Q4, Q4, Q2: no Q1, no Q3.
  preds = baselines.predict(train_y, np.array([3, 3, 1]), np.array([0, 1, 2, 3]))
  np.testing.assert_allclose(preds['quadrant_centre'],
                             [train_y.mean(0), [0.2, 0.9], train_y.mean(0), [0.85, 0.15]])

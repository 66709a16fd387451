"""Baselines against a hand computation with pandas, on the songs preparation writes."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from configs import default
from mer_jax import baselines
from mer_jax.jobs import baselines as baselines_job
from tests.fakes import write_audio
from tests.test_merge import ROWS, make_merge

QUADS = ('Q1', 'Q2', 'Q3', 'Q4')


def _manifest(tmp_path, n=60):
  """A manifest of `n` short songs with random labels and splits; some rows cannot be
  prepared (missing audio, silent audio): returned with a `usable` column."""
  rng = np.random.default_rng()
  df = pd.DataFrame({'song_id': [f's{i}' for i in range(n)],
                     'audio_path': [f'audio/s{i}.wav' for i in range(n)],
                     'lyrics_path': '', 'valence': rng.uniform(size=n).round(4),
                     'arousal': rng.beta(2, 5, size=n).round(4),
                     'split': rng.choice(['train', 'validation', 'test'], n, p=[.6, .2, .2])})
  # A curated quadrant label on some songs, often disagreeing with the labels.
  df['quadrant'] = np.where(rng.random(n) < 0.4, rng.choice(QUADS, n), '')
  usable = np.ones(n, bool)
  for i in range(n):
    path = str(tmp_path / df.audio_path[i])
    if i % 9 == 4:  # Missing file.
      usable[i] = False
      continue
    write_audio(path, seconds=1.2, seed=i)
    if i % 9 == 7:  # Silent: skipped by preparation.
      import soundfile as sf
      sf.write(path, np.zeros(30000, np.float32), 22050)
      usable[i] = False
  df.to_csv(tmp_path / 'manifest.csv', index=False)
  return df.assign(usable=usable)


def _hand(test, pred_v, pred_a):
  rows = []
  for d, p in (('valence', pred_v), ('arousal', pred_a)):
    err = p - test[d]
    mse = (err ** 2).mean()
    rows.append({'dimension': d, 'mse': mse, 'rmse': np.sqrt(mse), 'mae': err.abs().mean(),
                 'r2': 1 - (err ** 2).sum() / ((test[d] - test[d].mean()) ** 2).sum()})
  return pd.DataFrame(rows).set_index('dimension')


def _quadrant(d, source):
  q = np.where(d.arousal >= .5, np.where(d.valence >= .5, 1, 2),
               np.where(d.valence >= .5, 4, 3))
  if source == 'official':
    official = d.quadrant.fillna('').str[1:]
    q = np.where(official != '', pd.to_numeric(official, errors='coerce'), q)
  return q.astype(int)


@pytest.mark.parametrize('source', ['official', 'thresholds'])
def test_baselines_match_pandas_on_the_prepared_songs(tmp_path, source):
  df = _manifest(tmp_path)
  config = default.get_config()
  config.seed = 7
  config.data.manifest = str(tmp_path / 'manifest.csv')
  config.data.data_dir = str(tmp_path / 'prepared')
  config.data.lyrics = False
  config.data.num_workers = 1
  config.audio.num_frames = 32
  config.text.max_length = 8
  config.eval.quadrant_source = source
  got = baselines_job.run(config, str(tmp_path / 'w')).summary['table']
  written = pd.read_csv(tmp_path / 'w' / 'report' / 'baselines.csv')
  assert list(written.columns) == ['baseline', 'dimension', 'mse', 'rmse', 'mae', 'r2']
  # Only the songs preparation writes (the models' songs); random draws in id order.
  ok = df[df.usable]
  train = ok[ok.split == 'train']
  test = ok[ok.split == 'test'].sort_values('song_id').reset_index(drop=True)
  n_skipped = int((~df.usable).sum())
  md = (tmp_path / 'w' / 'report' / 'baselines.md').read_text()
  assert (f'{len(train)} training and {len(test)} test songs' in md
          and f'{n_skipped} input row(s) skipped by preparation' in md
          and 'prep_report.csv' in md), md
  train = train.assign(q=_quadrant(train, source))
  centres = train.groupby('q')[['valence', 'arousal']].mean()
  tq = _quadrant(test, source)
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


def test_exp1_baselines_command_on_merge(tmp_path):
  """The Exp 1 baselines command on a MERGE release with a song whose audio is
  missing: the baselines count the songs the models would (prep_report's)."""
  rows = ROWS + [('A005', 'L005', 'Q1', 0.7, 0.4, 'test')]  # Official Q1, labels Q2.
  base = make_merge(str(tmp_path), rows)
  os.remove(os.path.join(base, 'audio', 'Q3', 'MT0002.mp3'))  # A training song.
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  done = subprocess.run([sys.executable, 'launch.py', '--config=configs/exp1_baselines.py',
                         f'--config.data.root={tmp_path}',
                         f'--config.data.data_dir={tmp_path}/prepared',
                         f'--workdir={tmp_path}/w'],
                        cwd=repo, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  df = pd.read_csv(tmp_path / 'w' / 'report' / 'baselines.csv').set_index(
      ['baseline', 'dimension'])
  assert len(df) == 6
  # 3 training songs are left (A001 Q4, MT0001 Q1, A002 Q2), 3 test songs (MT0003 Q3,
  # A004 Q2, A005 official Q1): by hand.
  test_v, test_a = np.array([0.3, 0.45, 0.4]), np.array([0.2, 0.8, 0.7])
  mean_v = np.mean([0.8, 0.7, 0.2])
  assert df.loc[('mean', 'valence'), 'mae'] == pytest.approx(
      np.mean(np.abs(mean_v - test_v)), abs=1e-6)
  # Quadrant centres (official quadrants, the default): Q3 has no training song (the
  # overall mean), Q2 -> A002, A005's official Q1 -> MT0001 (its labels' Q2 -> A002).
  centre_v = np.array([mean_v, 0.2, 0.7])
  centre_a = np.array([np.mean([0.3, 0.9, 0.7]), 0.7, 0.9])
  assert df.loc[('quadrant_centre', 'valence'), 'mse'] == pytest.approx(
      np.mean((centre_v - test_v) ** 2), abs=1e-6)
  assert df.loc[('quadrant_centre', 'arousal'), 'mae'] == pytest.approx(
      np.mean(np.abs(centre_a - test_a)), abs=1e-6)
  md = (tmp_path / 'w' / 'report' / 'baselines.md').read_text()
  assert '3 training and 3 test songs' in md and '1 input row(s) skipped' in md
  # The disagreeing official quadrant is listed in the prep report, written.
  prep = [os.path.join(d, 'prep_report.csv') for d, _, f in os.walk(tmp_path / 'prepared')
          if 'prep_report.csv' in f]
  report = pd.read_csv(prep[0], keep_default_na=False).set_index('item_id')
  assert report.loc['A005', 'status'] == 'written'
  assert 'official quadrant Q1 differs from Q2' in report.loc['A005', 'note']
  assert report.loc['MT0002', 'status'] == 'skipped' and report.loc['A001', 'note'] == ''


def test_quadrant_without_training_songs_uses_the_mean():
  train_y = np.array([[0.8, 0.2], [0.9, 0.1], [0.2, 0.9]])  # Q4, Q4, Q2: no Q1, no Q3.
  preds = baselines.predict(train_y, np.array([3, 3, 1]), np.array([0, 1, 2, 3]))
  np.testing.assert_allclose(preds['quadrant_centre'],
                             [train_y.mean(0), [0.2, 0.9], train_y.mean(0), [0.85, 0.15]])

"""The synthetic demo dataset: deterministic, labelled, marked incongruent songs."""

import filecmp
import os

import numpy as np
import pandas as pd

from data_prep import manifest, synthetic

PARAMS = synthetic.SyntheticParams(num_songs=40, duration_s=2.0, seed=3)


def test_deterministic_and_readable_by_manifest_reader(tmp_path):
  a = synthetic.generate(str(tmp_path / 'a'), PARAMS)
  b = synthetic.generate(str(tmp_path / 'b'), PARAMS)
  assert filecmp.cmp(a, b, shallow=False)
  for sub in ('audio', 'lyrics'):
    names = sorted(os.listdir(tmp_path / 'a' / sub))
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / 'a' / sub, tmp_path / 'b' / sub,
                                               names, shallow=False)
    assert len(match) == 40 and not mismatch and not errors
  songs = manifest.read_manifest(a)
  assert len(songs) == 40
  assert all(os.path.isfile(s.audio_path) and os.path.isfile(s.lyrics_path) for s in songs)
  assert {s.split for s in songs} == {'train', 'validation', 'test'}
  df = pd.read_csv(a)
  assert set(df.congruent) <= {0, 1}


def test_regenerates_only_when_params_change(tmp_path):
  root = str(tmp_path / 'd')
  path = synthetic.generate(root, PARAMS)
  mtime = os.stat(path).st_mtime_ns
  synthetic.generate(root, PARAMS)
  assert os.stat(path).st_mtime_ns == mtime
  synthetic.generate(root, synthetic.SyntheticParams(num_songs=10, duration_s=2.0))
  assert len(manifest.read_manifest(path)) == 10


def test_incongruent_fraction_and_lyrics_valence():
  rng = np.random.default_rng(0)
  n = 4000
  congruent = rng.random(n) >= 0.15
  assert abs((~congruent).mean() - 0.15) < 0.02
  # Lyrics written for high valence hold mostly positive words, and vice versa.
  for v in (0.05, 0.95):
    words = synthetic._lyrics(v, 0.5, rng).split()
    pos = sum(w.strip(',') in synthetic.POSITIVE for w in words)
    neg = sum(w.strip(',') in synthetic.NEGATIVE for w in words)
    assert (pos > neg) == (v > 0.5)


def test_audio_loudness_rises_with_arousal():
  rng = np.random.default_rng(1)
  rms = [np.sqrt(np.mean(synthetic.synthesize(0.5, a, PARAMS, rng) ** 2))
         for a in (0.1, 0.5, 0.9)]
  assert rms[0] < rms[1] < rms[2]
  y = synthetic.synthesize(0.3, 0.7, PARAMS, rng)
  assert y.dtype == np.float32 and y.shape == (int(2.0 * 22050),)
  assert np.abs(y).max() <= 1.0


def test_second_writer_waits_and_reuses_the_first_ones_songs(tmp_path):
  import fcntl
  import shutil
  import threading
  root = str(tmp_path / 'd')
  path = synthetic.generate(root, PARAMS)
  shutil.move(root, str(tmp_path / 'done'))
  result = []
  with open(tmp_path / '.d.lock', 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # Another process is writing the songs.
    second = threading.Thread(target=lambda: result.append(synthetic.generate(root, PARAMS)))
    second.start()
    second.join(1.0)
    assert second.is_alive() and not os.path.exists(root)
    shutil.move(str(tmp_path / 'done'), root)  # It has finished.
    inode = os.stat(path).st_ino
  second.join(60)
  assert not second.is_alive() and result == [path]
  assert os.stat(path).st_ino == inode  # Reused, not written again.
  assert len(manifest.read_manifest(path)) == 40

"""Many songs: predictions and errors CSVs from a folder, resuming, rows of another model
refused (SIGKILL and resume: tests/test_drills.py)."""

import dataclasses
import os

import numpy as np
import soundfile as sf
import pandas as pd
import pytest

from mer_jax import predict_batch
from tests.conftest import tiny_songs


def _batch_inputs(config, tmp_path, n=5):
  """n good songs + an unreadable file, an empty file and a song without lyrics."""
  audio, lyrics = tmp_path / 'audio', tmp_path / 'lyrics'
  audio.mkdir()
  lyrics.mkdir()
  songs = tiny_songs(config).iloc[:n + 1]
  for song_id, s in songs.iterrows():
    os.symlink(s.audio, audio / f'{song_id}.wav')
    if song_id != songs.index[-1]:
      (lyrics / f'{song_id}.txt').write_text(s.lyrics)
  (audio / 'garbage.mp3').write_bytes(os.urandom(5000))
  (lyrics / 'garbage.txt').write_text('some words')
  (audio / 'empty.wav').write_bytes(b'')
  (lyrics / 'empty.txt').write_text('some words')
  # A float WAV with one NaN sample: an error row, never a NaN prediction.
  y, sr = sf.read(songs.audio.iloc[0], dtype='float32')
  y[len(y) // 2] = np.nan
  sf.write(audio / 'nonfinite.wav', y, sr, subtype='FLOAT')
  (lyrics / 'nonfinite.txt').write_text('some words')
  return str(audio), str(lyrics), list(songs.index)


def test_batch_prediction_writes_rows_and_errors(tiny_run, tmp_path):
  config, _, _, predictor = tiny_run
  audio, lyrics, ids = _batch_inputs(config, tmp_path)
  items = predict_batch.items_from_dirs(audio, lyrics)
  out = str(tmp_path / 'preds.csv')
  counts = predict_batch.predict_many(predictor, items, out, hop_s=None)
  assert counts == {'done': len(ids) - 1, 'failed': 4, 'skipped': 0}
  rows = pd.read_csv(out, dtype={'song_id': str})
  assert sorted(rows.song_id) == sorted(ids[:-1])
  assert (rows.checkpoint_step == predictor.step).all()
  assert (rows.params_sha256 == predictor.params_sha256).all()
  first = rows.iloc[0]
  single = predictor.predict(os.path.join(audio, f'{first.song_id}.wav'),
                             open(os.path.join(lyrics, f'{first.song_id}.txt')).read(),
                             hop_s=None)
  assert first.valence == pytest.approx(single['valence'], abs=1e-6)
  errors = pd.read_csv(str(tmp_path / 'preds_errors.csv')).set_index('song_id')
  assert set(errors.index) == {'garbage', 'empty', 'nonfinite', ids[-1]}
  assert errors.reason['garbage'].endswith('not an audio file (unrecognised format)')
  assert errors.reason['empty'].endswith('empty.wav: empty file (0 bytes)')
  assert errors.reason['nonfinite'].startswith('non-finite samples: ')
  assert 'nonfinite.wav: NaN or infinite samples (the first at' in errors.reason['nonfinite']
  assert 'no lyrics' in errors.reason[ids[-1]]
  # Nothing is redone; another model's file is refused.
  assert predict_batch.predict_many(predictor, items, out, hop_s=None) == {
      'done': 0, 'failed': 0, 'skipped': len(items)}
  other = dataclasses.replace(predictor, params_sha256='x')
  with pytest.raises(ValueError, match='another model'):
    predict_batch.predict_many(other, items, out, hop_s=None)


def test_csv_log_repairs_a_torn_write_and_refuses_other_files(tmp_path):
  cols = ('song_id', 'reason')
  path = tmp_path / 'log.csv'
  path.write_text('song_id,rea')  # Killed while writing the header.
  log = predict_batch.CsvLog(str(path), cols)
  assert path.read_text() == 'song_id,reason\n' and len(log.rows) == 0
  log.append({'song_id': '007', 'reason': 'a, "quoted" reason'})
  with open(path, 'a') as f:
    f.write('008,half a ro')  # Killed while writing a row.
  log = predict_batch.CsvLog(str(path), cols)
  assert list(log.rows.song_id) == ['007']
  assert log.rows.reason[0] == 'a, "quoted" reason'
  assert path.read_text().endswith('"a, ""quoted"" reason"\n')
  for other in ('name,value\nx,1\ny,2', 'notes without a newline'):
    path.write_text(other)
    with pytest.raises(ValueError, match='not a file this command wrote'):
      predict_batch.CsvLog(str(path), cols)
    assert path.read_text() == other  # Untouched.

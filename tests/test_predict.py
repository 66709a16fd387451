"""Prediction from a workdir: same numbers as the training pipeline, long-song windows,
any audio format, missing lyrics, the one-song command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mer_jax import audio_features, input_pipeline, predict
from tests.conftest import tiny_songs

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_prediction_equals_the_training_pipeline(tiny_run):
  """The single training window (hop_s=None): same log-mel as the prepared TFRecord and
  the same outputs as the training run's own evaluation of that song."""
  config, builder, workdir, predictor = tiny_run
  songs = tiny_songs(config)
  preds = pd.read_csv(os.path.join(workdir, 'report', 'predictions.csv'))
  records = input_pipeline.read_split(builder, 'test', ('song_id', 'mel'))
  for song_id, mel in zip(records['song_id'][:3], records['mel'][:3]):
    song = songs.loc[song_id.decode()]
    segments = [seg for _, seg in predictor.segments(song.audio, None)]
    mine = next(predictor.mel_batches(segments))[0]
    np.testing.assert_allclose(mine, mel, atol=1e-4)
    got = predictor.predict(song.audio, song.lyrics, hop_s=None)
    want = preds[preds.song_id == song_id.decode()].iloc[0]
    assert got['valence'] == pytest.approx(want.valence_pred, abs=2e-5)
    assert got['arousal'] == pytest.approx(want.arousal_pred, abs=2e-5)
    assert got['quadrant'] == predict.quadrant(got['valence'], got['arousal'])
    assert got['windows'] == 1 and got['lyrics'] == 'text'
  history = pd.read_csv(os.path.join(workdir, 'report', 'history.csv'))
  assert predictor.step == history.step[history.val_loss.idxmin()]


@pytest.mark.parametrize('n,window,hop,want', [
    (100, 100, 50, [0]), (80, 100, 50, [0]), (200, 100, 50, [0, 50, 100]),
    (230, 100, 50, [0, 50, 100, 130]), (230, 100, 100, [0, 100, 130]),
    (101, 100, 512, [0, 1])])
def test_window_starts_by_hand(n, window, hop, want):
  assert predict.window_starts(n, window, hop) == want


@pytest.mark.parametrize('n', [50, 100, 101, 230, 1000, 1037])
def test_sliding_windows_over_chunks_equal_slicing_the_whole_song(n):
  rng = np.random.default_rng()
  y = rng.normal(size=n).astype(np.float32)
  window, hop = 100, int(rng.integers(1, 120))
  cuts = np.sort(rng.integers(0, n, int(rng.integers(0, 12))))
  chunks = np.split(y, cuts)
  got = list(predict.sliding_windows(iter(chunks), window, hop))
  starts = predict.window_starts(n, window, hop)
  assert [s for s, _ in got] == starts
  for s, seg in got:
    np.testing.assert_array_equal(seg, y[s:s + window])


def test_streamed_decode_equals_load_audio(tmp_path):
  """Block-wise decode + soxr stream = librosa.load, for a mono 22.05 kHz WAV and
  stereo 44.1 kHz FLAC and MP3."""
  rng = np.random.default_rng()
  params = audio_features.MelParams()
  t = np.arange(int(44100 * 7.3)) / 44100
  stereo = 0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1)
  stereo += 0.01 * rng.normal(size=stereo.shape)
  for name, data, sr in (('a.wav', stereo[::2, 0], 22050), ('b.flac', stereo, 44100),
                         ('c.mp3', stereo, 44100)):
    path = str(tmp_path / name)
    sf.write(path, data, sr)
    want = audio_features.load_audio(path, params)
    got = np.concatenate(list(audio_features.stream_audio(path, params, block=5000)))
    assert got.shape == want.shape, name
    np.testing.assert_allclose(got, want, atol=1e-6, err_msg=name)
  silent = str(tmp_path / 'silent.wav')
  sf.write(silent, np.zeros(44100 * 2), 44100)
  with pytest.raises(audio_features.SilentAudioError, match='silent.wav'):
    list(audio_features.stream_audio(silent, params))


def test_long_song_windows_average_what_each_excerpt_predicts(tiny_run, tmp_path):
  """A 4-window song: every window's output equals predicting a file holding only that
  excerpt, and the song's output is their mean."""
  config, _, _, predictor = tiny_run
  song = tiny_songs(config).iloc[0]
  sr = predictor.mel_params.sample_rate
  y = audio_features.load_audio(song.audio, predictor.mel_params)
  long = np.concatenate([y, y[::-1], 0.5 * y, y])  # ~12 s, the model window is ~3 s.
  path = str(tmp_path / 'long.wav')
  sf.write(path, long, sr, subtype='FLOAT')
  hop_s = 2.0
  res = predictor.predict(path, song.lyrics, hop_s=hop_s, per_window=True)
  window = audio_features.window_samples(predictor.mel_params)
  hop = int(round(hop_s * sr / 512)) * 512
  starts = list(range(0, long.size - window + 1, hop))
  if starts[-1] + window < long.size:
    starts.append(long.size - window)
  assert res['windows'] == len(starts) == len(res['per_window'])
  np.testing.assert_allclose(res['window_starts_s'], np.array(starts) / sr)
  for k in (0, 2, len(starts) - 1):
    excerpt = str(tmp_path / f'w{k}.wav')
    sf.write(excerpt, long[starts[k]:starts[k] + window], sr, subtype='FLOAT')
    alone = predictor.predict(excerpt, song.lyrics, hop_s=hop_s)
    assert alone['windows'] == 1
    assert res['per_window'][k]['valence'] == pytest.approx(alone['valence'], abs=1e-5)
    assert res['per_window'][k]['arousal'] == pytest.approx(alone['arousal'], abs=1e-5)
  assert res['valence'] == pytest.approx(
      np.mean([w['valence'] for w in res['per_window']]), abs=1e-6)


def test_any_format_rate_and_channels(tiny_run, tmp_path):
  """Stereo 44.1 kHz FLAC / OGG / MP3 of a song predict close to its mono WAV."""
  config, _, _, predictor = tiny_run
  song = tiny_songs(config).iloc[1]
  y, sr = sf.read(song.audio)
  import librosa
  stereo = np.stack([librosa.resample(y, orig_sr=sr, target_sr=44100)] * 2, axis=1)
  base = predictor.predict(song.audio, song.lyrics, hop_s=None)
  for ext, tol in (('flac', 1e-3), ('ogg', 0.05), ('mp3', 0.05)):
    path = str(tmp_path / f'song.{ext}')
    sf.write(path, stereo * 0.999, 44100)
    res = predictor.predict(path, song.lyrics, hop_s=None)
    assert res['valence'] == pytest.approx(base['valence'], abs=tol), ext
    assert res['arousal'] == pytest.approx(base['arousal'], abs=tol), ext


def test_missing_lyrics_error_or_explicit_fallback(tiny_run):
  config, _, _, predictor = tiny_run
  song = tiny_songs(config).iloc[0]
  for lyrics in (None, '  \n'):
    with pytest.raises(predict.LyricsMissingError, match='no lyrics'):
      predictor.predict(song.audio, lyrics)
  # The tiny model was trained without lyrics dropout: it has no audio-only mode.
  assert not predictor.can_drop_lyrics
  with pytest.raises(predict.LyricsMissingError, match='modality_dropout'):
    predictor.predict(song.audio, None, audio_only_fallback=True)
  # A model trained with lyrics dropout: the fallback is its dropped-lyrics output.
  predictor.config.model.fusion.modality_dropout = 0.5
  try:
    res = predictor.predict(song.audio, None, hop_s=None, audio_only_fallback=True)
  finally:
    predictor.config.model.fusion.modality_dropout = 0.0
  assert res['lyrics'] == 'audio-only fallback'
  mel = next(predictor.mel_batches(seg for _, seg in predictor.segments(song.audio, None)))
  want = predictor.model.apply(predictor.variables, {
      'mel': mel, 'lyrics_emb': np.full((1, 384), 3.0, np.float32)}, drop_lyrics=True)
  np.testing.assert_allclose([res['valence'], res['arousal']], np.asarray(want)[0],
                             atol=1e-5)
  with_text = predictor.predict(song.audio, song.lyrics, hop_s=None)
  assert with_text['valence'] != pytest.approx(res['valence'], abs=1e-6)


def _siamese_report(workdir):
  """(Siamese workdir, its report's congruence per song) beside Exp 3's Exp 1 run."""
  siamese = os.path.join(os.path.dirname(workdir), 'siamese')
  report = pd.read_csv(os.path.join(siamese, 'report', 'congruence.csv'))
  return siamese, report.set_index('song_id').congruence


def test_congruence_equals_the_siamese_runs_own_report(tiny_run, tmp_path):
  """One training window (hop_s=None): the congruence `predict_song` adds is what the
  Siamese run reported for that song from the prepared data; the fusion outputs are
  those of the fusion model alone."""
  config, _, workdir, predictor = tiny_run
  siamese_dir, want = _siamese_report(workdir)
  siamese = predict.Predictor.from_workdir(siamese_dir)
  songs = tiny_songs(config)
  for song_id in songs.index[:3]:
    song = songs.loc[song_id]
    res = predict.predict_song(
        predictor, song.audio, lyrics_path=os.path.join(config.data.root, song.lyrics_path),
        hop_s=None, congruence=siamese)
    assert res['congruence'] == pytest.approx(want[song_id], abs=1e-4)
    alone = predictor.predict(song.audio, song.lyrics, hop_s=None)
    assert (res['valence'], res['arousal']) == (alone['valence'], alone['arousal'])
  empty = tmp_path / 'empty.txt'
  empty.write_text(' \n')
  with pytest.raises(predict.LyricsMissingError, match='lyrics empty: .*empty.txt'):
    predict.predict_song(predictor, song.audio, lyrics_path=str(empty), congruence=siamese)


def test_cli_prints_one_song(tiny_run):
  config, _, workdir, _ = tiny_run
  song_id = tiny_songs(config).index[0]
  song = tiny_songs(config).loc[song_id]
  lyrics = os.path.join(config.data.root, song.lyrics_path)
  siamese_dir, congruence = _siamese_report(workdir)
  done = subprocess.run([sys.executable, '-m', 'mer_jax.predict', f'--workdir={workdir}',
                         f'--audio={song.audio}', f'--lyrics={lyrics}', '--json',
                         '--hop_s=0', f'--congruence_workdir={siamese_dir}'],
                        cwd=REPO, capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  res = json.loads(done.stdout)
  assert 0 <= res['valence'] <= 1 and 0 <= res['arousal'] <= 1
  assert res['scale'] == predict.SCALE and res['quadrant'] in predict.QUADRANTS
  assert res['congruence'] == pytest.approx(congruence[song_id], abs=1e-4)
  bad = subprocess.run([sys.executable, '-m', 'mer_jax.predict', f'--workdir={workdir}',
                        f'--audio={song.audio}'], cwd=REPO, capture_output=True, text=True)
  assert bad.returncode != 0 and 'no lyrics' in bad.stderr
  both = subprocess.run([sys.executable, '-m', 'mer_jax.predict', f'--workdir={workdir}',
                         f'--audio={song.audio}', f'--lyrics={lyrics}', '--lyrics_text=x'],
                        cwd=REPO, capture_output=True, text=True)
  assert both.returncode != 0 and 'not both' in both.stderr


def test_non_finite_audio_or_outputs_never_become_a_prediction(tiny_run, tmp_path):
  """NaN/inf samples: an AudioError naming the file (the command's one-line error); a
  model whose outputs are not finite: FloatingPointError, never a NaN result."""
  import dataclasses

  import jax
  config, _, _, predictor = tiny_run
  song = tiny_songs(config).iloc[0]
  y, sr = sf.read(song.audio, dtype='float32')
  y[len(y) // 3] = np.nan
  sf.write(tmp_path / 'nan.wav', y, sr, subtype='FLOAT')
  with pytest.raises(audio_features.NonFiniteAudioError, match='nan.wav: NaN or infinite'):
    predictor.predict(str(tmp_path / 'nan.wav'), song.lyrics)
  broken = dataclasses.replace(predictor, variables=jax.tree.map(
      lambda a: np.full_like(a, np.nan), predictor.variables))
  with pytest.raises(FloatingPointError, match='non-finite valence, arousal'):
    broken.predict(song.audio, song.lyrics)


def test_the_notebooks_loaders_say_in_one_line_what_is_wrong(tiny_run, tmp_path):
  """What the notebooks load (a run, an Exp 3 report) fails, for a folder that is not
  one or holds damaged files, with a user error (`logs.USER_ERRORS`) of one line naming
  the path and the problem, never a deep traceback from json or Orbax."""
  import shutil

  from mer_jax import congruence, logs
  _, _, workdir, _ = tiny_run
  a_file = tmp_path / 'a_file'
  a_file.write_text('x')
  run = tmp_path / 'run'
  shutil.copytree(workdir, run)
  cases = {str(tmp_path / 'missing'): 'missing/config.json not found',
           str(a_file): 'a_file/config.json not found'}
  for workdir_, want in cases.items():
    with pytest.raises(logs.USER_ERRORS) as e:
      predict.Predictor.from_workdir(workdir_)
    assert want in logs.user_message(e.value) and '\n' not in logs.user_message(e.value)
  (run / 'config.json').write_text('{"config": {"seed": ')  # Cut short.
  with pytest.raises(ValueError, match=r'run/config.json: not a readable run config '
                     r'\(JSONDecodeError: '):
    predict.Predictor.from_workdir(str(run))
  shutil.copy(os.path.join(workdir, 'config.json'), run / 'config.json')
  steps = [d for d in os.listdir(run / 'checkpoints') if d.isdigit()]
  for step in steps:  # Every checkpoint's array data cut short: the best cannot be read.
    for root, _, files in os.walk(run / 'checkpoints' / step / 'state'):
      for f in files:
        if os.path.basename(root) == 'd':
          with open(os.path.join(root, f), 'r+b') as fh:
            fh.truncate(3)
  with pytest.raises(ValueError, match=r'checkpoints/\d+: checkpoint cannot be read') as e:
    predict.Predictor.from_workdir(str(run))
  assert '\n' not in str(e.value)
  shutil.rmtree(run / 'checkpoints')
  with pytest.raises(FileNotFoundError, match='run has no checkpoint yet'):
    predict.Predictor.from_workdir(str(run))
  assert not (run / 'checkpoints').exists()  # Loading created nothing.
  report = tmp_path / 'exp3' / 'report'
  report.mkdir(parents=True)
  with pytest.raises(FileNotFoundError, match='exp3_runs.json not found'):
    congruence.read_runs(str(report.parent))
  (report / 'exp3_runs.json').write_text('[1, 2]')
  with pytest.raises(ValueError, match='exp3_runs.json: not a readable Exp 3 runs file'):
    congruence.read_runs(str(report.parent))

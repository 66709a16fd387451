"""Log-mel features against librosa called directly."""

import warnings

import numpy as np
import pytest
import soundfile as sf

import librosa
from mer_jax import audio_features as af

PARAMS = af.MelParams()
# Largest |mer_jax - librosa| log-mel difference, dB, for bins whose librosa value is
# above / at most QUIET_DB. Both are float32, and FFT rounding is relative to the
# frame's energy, so a bin far below its frame carries more dB error (about 3x per
# 10 dB). Measured (max over songs): random test songs 4e-5 dB above -60 dB, 5e-4 dB
# below; synthetic music faded over 60 dB 6e-5 / 7e-4 dB; low-passed music (loud lows,
# highs 60-80 dB down in the same frames) 1.1e-4 / 1.3e-3 dB; recorded audio up to
# 1.7e-3 dB below -60 dB. 1e-2 dB keeps ~6x margin over that and still catches a
# precision bug: a Hann window rounded to float16 stays within 1e-3 dB above -60 dB
# but is 0.015-0.035 dB off below on the random songs, 0.11 dB on low-passed music.
QUIET_DB, LOUD_ATOL_DB, QUIET_ATOL_DB = -60.0, 1e-3, 1e-2


def _librosa_reference(path, ref_power, num_frames=1292):
  y, _ = librosa.load(path, sr=22050, mono=True)
  s = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=512,
                                     n_mels=128, power=2.0)
  db = librosa.power_to_db(s, ref=ref_power, amin=1e-10, top_db=None)
  db = np.maximum(db, -80.0)[:, :num_frames]
  out = np.full((128, num_frames), -80.0, np.float32)
  out[:, :db.shape[1]] = db
  return out


def _random_song(rng, seconds, sr, channels):
  n = int(seconds * sr)
  t = np.arange(n) / sr
  y = 0.1 * rng.standard_normal((n, channels))
  for _ in range(5):
    y += rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * rng.uniform(50, 5000) * t)[:, None]
  y *= np.exp(-rng.uniform(0, 0.3) * t)[:, None]  # Quiet tail: exercises the floor.
  return np.clip(y, -1, 1).squeeze()


def _assert_db_close(got, want):
  loud = want > QUIET_DB
  np.testing.assert_allclose(got[loud], want[loud], atol=LOUD_ATOL_DB, rtol=0)
  np.testing.assert_allclose(got[~loud], want[~loud], atol=QUIET_ATOL_DB, rtol=0)


@pytest.mark.parametrize('seconds,sr,channels', [
    (7.3, 22050, 1),     # shorter than 30 s: padded
    (30.0, 22050, 1),    # exactly 30 s
    (34.1, 22050, 2),    # longer, stereo: truncated, downmixed
    (12.0, 44100, 2),    # another sample rate: resampled
    (31.0, 16000, 1),    # upsampled, longer than the window
])
def test_log_mel_matches_librosa(tmp_path, seconds, sr, channels):
  rng = np.random.default_rng()
  path = str(tmp_path / 'song.wav')
  sf.write(path, _random_song(rng, seconds, sr, channels), sr, subtype='FLOAT')
  power = af.song_mel_power(path, PARAMS)
  ref = float(power.max()) * rng.uniform(1.0, 3.0)  # A dataset max >= this song's max.
  got = af.power_to_db(power, ref, PARAMS.num_frames)
  want = _librosa_reference(path, ref)
  assert got.shape == (128, 1292) and got.dtype == np.float32
  _assert_db_close(got, want)
  n_real = min(1292, 1 + int(round(seconds * 22050)) // 512)
  assert np.all(got[:, n_real:] == -80.0)  # Padding is the -80 dB floor.
  assert got.min() >= -80.0 and got.max() <= 0.0
  np.testing.assert_allclose(af.log_mel(path, PARAMS, ref), got)


def test_log_mel_of_dull_music_matches_librosa(tmp_path):
  """Closer to recorded audio than the random songs: the demo music low-passed (loud
  lows, highs 60-80 dB down in the same frames) and faded out, the case where quiet
  bins carry the most float32 error."""
  import scipy.signal
  from data_prep import synthetic
  rng = np.random.default_rng()
  params = synthetic.SyntheticParams(duration_s=12.0)
  y = synthetic.synthesize(*rng.uniform(size=2), params, rng).astype(np.float64)
  sos = scipy.signal.butter(int(rng.integers(4, 12)), rng.uniform(800, 6000),
                            fs=params.sample_rate, output='sos')
  y = scipy.signal.sosfilt(sos, y) * 10 ** (-np.linspace(0, 40, y.size) / 20)
  path = str(tmp_path / 'song.wav')
  sf.write(path, (0.9 * y / np.abs(y).max()).astype(np.float32), params.sample_rate,
           subtype='FLOAT')
  power = af.song_mel_power(path, PARAMS)
  ref = float(power.max())
  got, want = af.power_to_db(power, ref, PARAMS.num_frames), _librosa_reference(path, ref)
  real = want[:, :power.shape[1]]
  assert np.mean((real > -80) & (real <= QUIET_DB)) > 0.05  # Many quiet bins tested.
  _assert_db_close(got, want)


def test_power_to_db_reference_is_zero_db():
  rng = np.random.default_rng()
  power = rng.uniform(0, 5, size=(128, 50)).astype(np.float32)
  db = af.power_to_db(power, float(power.max()), 60)
  assert db.max() == pytest.approx(0.0, abs=1e-5)
  np.testing.assert_allclose(db[:, :50], np.maximum(10 * np.log10(
      np.maximum(power, 1e-10) / power.max()), -80), atol=1e-4)


def test_unreadable_audio_names_the_file(tmp_path):
  path = tmp_path / 'broken.mp3'
  path.write_bytes(b'this is not audio')
  with pytest.raises(ValueError, match='broken.mp3'):
    af.song_mel_power(str(path), PARAMS)


@pytest.mark.parametrize('n_mels,n_fft,hop', [(128, 2048, 512), (64, 1024, 256)])
def test_mel_power_equals_librosa_melspectrogram(n_mels, n_fft, hop):
  rng = np.random.default_rng()
  params = af.MelParams(n_mels=n_mels, n_fft=n_fft, hop_length=hop)
  # Random lengths: a few frames (every frame touches the zero padding), shorter than
  # one chunk of frames, not a multiple of it, cropped.
  lengths = [int(rng.integers(1, 3 * n_fft))] + [int(rng.integers(22050, 40 * 22050))
                                                 for _ in range(3)]
  for n in lengths:
    y = (rng.standard_normal(n) * rng.uniform(0.01, 1)).astype(np.float32)
    got = af.mel_power(y, params, chunk=int(rng.integers(1, 300)))
    with warnings.catch_warnings():  # librosa warns that n_fft exceeds a short input.
      warnings.simplefilter('ignore', UserWarning)
      want = librosa.feature.melspectrogram(
          y=af.crop(y, params), sr=22050, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
          power=2.0)[:, :params.num_frames]
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6 * float(want.max()))


@pytest.mark.parametrize('fmt,sr,channels', [('MP3', 44100, 2), ('FLAC', 48000, 2),
                                             ('OGG', 32000, 1), ('WAV', 22050, 2)])
def test_load_audio_equals_librosa_load(tmp_path, fmt, sr, channels):
  rng = np.random.default_rng()
  path = str(tmp_path / f'song.{fmt.lower()}')
  sf.write(path, _random_song(rng, rng.uniform(2, 9), sr, channels), sr, format=fmt)
  want, _ = librosa.load(path, sr=22050, mono=True)
  got = af.load_audio(path, PARAMS)
  assert got.dtype == np.float32 and got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize('channels', [1, 2, 3, 6])
def test_downmix_equals_librosa_to_mono(channels):
  rng = np.random.default_rng()
  x = rng.uniform(-1, 1, (int(rng.integers(1, 50_000)), channels)).astype(np.float32)
  # librosa sums [channels, samples] row by row, as downmix does: the same bits.
  np.testing.assert_array_equal(af.downmix(x), librosa.to_mono(np.ascontiguousarray(x.T)))


def test_iter_song_mel_powers_threads_keep_order_and_report_errors(tmp_path):
  rng = np.random.default_rng()
  paths = []
  for i in range(5):
    paths.append(str(tmp_path / f'song{i}.wav'))
    sf.write(paths[-1], _random_song(rng, rng.uniform(1.5, 4), 22050, 1), 22050)
  paths.insert(2, str(tmp_path / 'silent.wav'))
  sf.write(paths[2], np.zeros(44100), 22050)
  got = list(af.iter_song_mel_powers(paths, PARAMS, num_workers=2, progress=False))
  assert len(got) == 6
  assert got[2][0] is None and got[2][1].startswith('audio silent: ')
  assert 'silent.wav' in got[2][1]
  for path, (power, err) in zip(paths[:2] + paths[3:], got[:2] + got[3:]):
    assert err is None
    # Equal up to BLAS summation order (one thread per worker vs all threads here).
    np.testing.assert_allclose(power, af.song_mel_power(path, PARAMS), rtol=1e-5)


def test_iter_song_mel_powers_computes_at_most_two_songs_per_worker_ahead(monkeypatch):
  started = []

  def fake(path, params):
    started.append(path)
    return np.full((2, 3), float(path)), None

  monkeypatch.setattr(af, '_power_or_error', fake)
  paths = [str(i) for i in range(20)]
  for k, (power, err) in enumerate(af.iter_song_mel_powers(paths, PARAMS, num_workers=3,
                                                           progress=False)):
    assert err is None and power[0, 0] == k  # In order.
    assert len(started) <= k + 1 + 2 * 3  # Bounded look-ahead, however slow we are.
  assert len(started) == 20


@pytest.mark.parametrize('where', ['all', 'one'])
@pytest.mark.parametrize('value', [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_an_error_in_every_decode_path(tmp_path, where, value):
  """A float WAV with NaN/inf samples (the whole file or one sample) never becomes a
  waveform: load_audio, stream_audio (before yielding the bad block) and the mel power
  all raise NonFiniteAudioError naming the file and how many samples are bad."""
  rng = np.random.default_rng()
  y = rng.uniform(-0.5, 0.5, (44100, 2)).astype(np.float32)
  first = 0 if where == 'all' else int(rng.integers(len(y)))
  if where == 'all':
    y[:] = value
  else:
    y[first, int(rng.integers(2))] = value
  path = str(tmp_path / 'x.wav')
  sf.write(path, y, 44100, subtype='FLOAT')
  match = rf'x.wav: NaN or infinite samples \(the first at {first / 44100:.3f} s\)'
  with pytest.raises(af.NonFiniteAudioError, match=match):
    af.load_audio(path, af.MelParams())
  with pytest.raises(af.NonFiniteAudioError, match=match):
    list(af.stream_audio(path, af.MelParams(), block=4096))
  power, err = af._power_or_error(path, af.MelParams())
  assert power is None and err.startswith('non-finite samples: ')
  # Finite samples so large that the mel power overflows float32 are refused too.
  sf.write(path, np.full((44100, 1), 3e19, np.float32), 44100, subtype='FLOAT')
  with pytest.raises(af.NonFiniteAudioError, match='overflows'):
    af.song_mel_power(path, af.MelParams())


def test_file_problems_say_what_is_wrong(tmp_path):
  (tmp_path / 'song.mp3').mkdir()
  (tmp_path / 'zero.mp3').write_bytes(b'')
  (tmp_path / 'noise.mp3').write_bytes(np.random.default_rng().bytes(5000))
  cases = {'song.mp3': 'is a directory, not an audio file',
           'zero.mp3': r'empty file \(0 bytes\)',
           'noise.mp3': r'not an audio file \(unrecognised format\)'}
  for name, reason in cases.items():
    path = str(tmp_path / name)
    for decode in (lambda p: af.load_audio(p, af.MelParams()),
                   lambda p: list(af.stream_audio(p, af.MelParams()))):
      with pytest.raises(af.AudioError, match=f'{name}: {reason}'):
        decode(path)
  with pytest.raises(af.MissingAudioError) as e:
    af.check_file(str(tmp_path / 'gone.wav'))
  assert f'{e.value.kind}: {e.value}' == f'audio file missing: {tmp_path / "gone.wav"}'


@pytest.mark.parametrize('fmt', ['MP3', 'WAV'])
def test_truncated_file_is_an_error_a_complete_one_is_not(tmp_path, fmt):
  """A file cut to 30 % of its bytes (a download cut short) decodes fewer frames than
  its header declares (MP3: the Xing header; WAV: the RIFF data chunk): both decoders
  refuse it with TruncatedAudioError and both lengths. The whole file decodes to the
  length soundfile reads with no check."""
  rng = np.random.default_rng()
  seconds = rng.uniform(8, 12)
  y = _random_song(rng, seconds, 22050, 1).astype(np.float32)
  whole = str(tmp_path / f'whole.{fmt.lower()}')
  sf.write(whole, y, 22050, format=fmt)
  data = open(whole, 'rb').read()
  cut = str(tmp_path / f'cut.{fmt.lower()}')
  open(cut, 'wb').write(data[:len(data) * 3 // 10])
  n = len(sf.read(cut)[0])  # What a decode without the check returns.
  assert n < 0.4 * len(y)
  match = (rf'cut.{fmt.lower()}: decodes {n / 22050:.2f} s of the {len(y) / 22050:.2f} s '
           'its header declares')
  with pytest.raises(af.TruncatedAudioError, match=match):
    af.load_audio(cut, PARAMS)
  with pytest.raises(af.TruncatedAudioError, match=match):
    list(af.stream_audio(cut, PARAMS, block=4096))
  assert af._power_or_error(cut, PARAMS)[1].startswith('truncated file: ')
  assert af.load_audio(whole, PARAMS).size == len(sf.read(whole)[0])
  assert sum(c.size for c in af.stream_audio(whole, PARAMS)) == len(sf.read(whole)[0])
  if fmt == 'MP3':  # Without a Xing/Info header the length is only estimated: not used.
    blank = data[:len(data) * 3 // 10].replace(b'Xing', bytes(4)).replace(b'Info', bytes(4))
    plain = str(tmp_path / 'plain.mp3')
    open(plain, 'wb').write(blank)
    assert af.load_audio(plain, PARAMS).size == len(sf.read(plain)[0])

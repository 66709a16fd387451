"""Log-mel spectrogram features.

The feature is the thesis's: librosa load at 22,050 Hz mono, STFT with n_fft 2048 and
hop 512, 128 mel bands (Slaney), power spectrogram converted to dB against a
*dataset-wide* maximum power, floored at -80 dB and truncated or padded (with the
-80 dB floor value) to a fixed number of frames (1292 frames = 30 s).

Extraction is split in two so that the reference can be computed over a dataset:
``mel_power`` (per song, absolute power) and ``power_to_db`` (needs the reference).
This module imports only numpy, scipy, soundfile, soxr and librosa (for its filters).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from typing import Iterator

import numpy as np

# Decoding and its errors live in audio_decode; the names stay importable from here.
from mer_jax.audio_decode import (  # noqa: F401
    MIN_SECONDS, SILENCE_PEAK, AudioError, AudioTooShortError, MissingAudioError,
    NonFiniteAudioError, SilentAudioError, TruncatedAudioError, check_file, downmix,
    load_audio, stream_audio)

# Floor and padding value of the features, in dB relative to the dataset max power.
DB_FLOOR = -80.0
# Prepared data keeps dB down to this level (and pads with it) instead of DB_FLOOR; the
# model's input is floored at DB_FLOOR when read (`mer_jax.input_pipeline`). Stored so,
# features re-referenced to another dataset's max power (cross-dataset tests) equal an
# extraction against that power, floor and padding included, for offsets up to
# DB_FLOOR - STORED_FLOOR = 120 dB. Real mel powers never reach it: a full-scale signal's
# mel power is below 1e5 (50 dB) and powers are clamped at AMIN (-100 dB).
STORED_FLOOR = -200.0
# Smallest power considered before taking the log (librosa's default `amin`).
AMIN = 1e-10
CROPS = ('start', 'center')


@dataclasses.dataclass(frozen=True)
class MelParams:
  """Feature parameters; saved with prepared data so prediction reuses them."""
  sample_rate: int = 22050  # Hz; audio is resampled to this rate.
  n_fft: int = 2048  # STFT window and FFT size, samples.
  hop_length: int = 512  # STFT hop, samples.
  n_mels: int = 128  # Mel bands.
  num_frames: int = 1292  # Frames kept (1292 = 30 s at 22,050 Hz / 512).
  crop: str = 'start'  # Longer audio: keep the 'start' or the 'center' window.

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def window_samples(params: MelParams) -> int:
  """Samples that reach the `num_frames` kept frames of a centered STFT."""
  return (params.num_frames - 1) * params.hop_length + params.n_fft // 2 + 1


def crop(y: np.ndarray, params: MelParams) -> np.ndarray:
  """The part of a waveform the features see: all of it when it fits the window,
  else the window at the start or (crop='center') centred, aligned to the hop."""
  if params.crop not in CROPS:
    raise ValueError(f'crop must be one of {CROPS}, got {params.crop!r}')
  n = window_samples(params)
  if y.size <= n:
    return y
  start = 0
  if params.crop == 'center':
    start = (y.size - (params.num_frames - 1) * params.hop_length) // 2
    start -= start % params.hop_length
  return y[start:start + n]


# Mel filters per matrix product in `mel_power`: narrow groups skip most of the zeros of
# the filter matrix (8 filters: 23 MFLOP per 30 s song, 32 filters: 86 MFLOP).
_FILTER_GROUP = 8


@functools.lru_cache(maxsize=8)
def _mel_plan(params: MelParams) -> tuple[np.ndarray, tuple]:
  """Hann window [n_fft] and librosa's Slaney mel filters cut into groups of
  _FILTER_GROUP filters, each with the FFT-bin range it is non-zero on:
  (m0, m1, k0, k1, filters [m1 - m0, k1 - k0])."""
  from importlib import metadata

  from mer_jax import caches

  def make() -> dict[str, np.ndarray]:
    import librosa
    return {'fb': librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft,
                                      n_mels=params.n_mels),
            'window': librosa.filters.get_window('hann', params.n_fft, fftbins=True)}

  # Cached: importing librosa.filters (scipy.signal) is a second of a prediction's start.
  plan = caches.arrays('mel_filters', {
      'librosa': metadata.version('librosa'), 'sr': params.sample_rate,
      'n_fft': params.n_fft, 'n_mels': params.n_mels}, make)
  fb, window = plan['fb'], plan['window'].astype(np.float32)
  nz = fb > 0
  groups = []
  for m0 in range(0, params.n_mels, _FILTER_GROUP):
    m1 = min(m0 + _FILTER_GROUP, params.n_mels)
    cols = np.flatnonzero(nz[m0:m1].any(axis=0))
    k0, k1 = (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, 0)
    groups.append((m0, m1, k0, k1, np.ascontiguousarray(fb[m0:m1, k0:k1])))
  return window, tuple(groups)


def _chunk_samples(y: np.ndarray, start: int, stop: int) -> np.ndarray:
  """y[start:stop], zero outside the waveform (the centered STFT's padding): a view
  inside it, a copy only for the few chunks that touch an end."""
  if start >= 0 and stop <= y.size:
    return y[start:stop]
  seg = np.zeros(stop - start, np.float32)
  lo, hi = max(start, 0), min(stop, y.size)
  if hi > lo:
    seg[lo - start:hi - start] = y[lo:hi]
  return seg


def mel_power(y: np.ndarray, params: MelParams, chunk: int = 128) -> np.ndarray:
  """Mel power spectrogram of the kept window (`crop`): at most `num_frames` frames.

  librosa.feature.melspectrogram's numbers (centered, zero-padded Hann STFT, |X|^2,
  Slaney mel filters) computed ~3x faster: `chunk` frames at a time so they stay in
  cache, frames read in place from the waveform, and each group of 8 filters
  multiplies only the FFT bins it is non-zero on (the filter matrix is 98% zeros),
  written straight into the output. Releases the GIL in its heavy steps.

  After `power_to_db`, within 1e-3 dB of librosa's (also float32) numbers for bins above
  -60 dB. Float32 FFT rounding is relative to the frame's energy, so quieter bins of a
  loud frame carry more dB error (about 3x per 10 dB): up to 1.3e-3 dB measured on
  low-passed music, 1.7e-3 dB on recorded audio, for bins 60-80 dB down; tested against
  1e-2 dB there (tests/test_audio_features.py).

  Args:
    y: mono waveform, float, [samples] at params.sample_rate.
  Returns:
    float32 [n_mels, frames] with frames = min(num_frames, 1 + samples // hop), power
    (amplitude squared), not yet padded.
  """
  import scipy.fft
  window, groups = _mel_plan(params)
  n_fft, hop = params.n_fft, params.hop_length
  y = np.asarray(crop(y, params), np.float32)
  num = min(params.num_frames, 1 + y.size // hop)
  out = np.empty((params.n_mels, num), np.float32)
  buf = np.empty((chunk, n_fft), np.float32)
  for t0 in range(0, num, chunk):
    c = min(chunk, num - t0)
    start = t0 * hop - n_fft // 2  # Frame t is centred on sample t * hop.
    seg = _chunk_samples(y, start, start + (c - 1) * hop + n_fft)
    frames = np.lib.stride_tricks.sliding_window_view(seg, n_fft)[::hop]
    spec = scipy.fft.rfft(np.multiply(frames, window, out=buf[:c]), axis=-1,
                          overwrite_x=True)
    power = np.abs(spec)
    power *= power
    for m0, m1, k0, k1, w in groups:
      np.matmul(w, power[:, k0:k1].T, out=out[m0:m1, t0:t0 + c])
  return out


def power_to_db(power: np.ndarray, ref_power: float, num_frames: int,
                floor: float = DB_FLOOR) -> np.ndarray:
  """dB against the dataset reference, floored, padded/truncated.

  Args:
    power: [n_mels, frames] mel power.
    ref_power: dataset-wide maximum mel power (0 dB).
    num_frames: output frames; missing frames are filled with `floor`.
    floor: lowest value and padding, dB: DB_FLOOR for the model's input, STORED_FLOOR
      for prepared data.
  Returns:
    float32 [n_mels, num_frames] in dB (<= 0 for songs of the reference set).
  """
  if not ref_power > 0:
    raise ValueError(f'reference power must be positive, got {ref_power}')
  out = np.full((power.shape[0], num_frames), floor, dtype=np.float32)
  n = min(num_frames, power.shape[1])
  # float32 throughout (in place): ~1e-5 dB from float64, 5x less time.
  db = np.maximum(power[:, :n], AMIN, dtype=np.float32)
  np.log10(db, out=db)
  db *= 10.0
  db -= np.float32(10.0 * np.log10(max(ref_power, AMIN)))
  np.maximum(db, floor, out=out[:, :n])
  return out


def song_mel_power(path: str, params: MelParams) -> np.ndarray:
  """Decode + mel power for one file: [n_mels, <= num_frames] float32."""
  y = load_audio(path, params)
  with np.errstate(over='ignore', invalid='ignore'):  # Overflow is checked just below.
    power = mel_power(y, params)
  if not np.isfinite(power).all():  # Finite samples so large (float files) it overflows.
    raise NonFiniteAudioError(f'{path}: its mel power overflows float32 (samples far '
                              'outside -1..1)')
  return power


def power_or_error(path: str, params: MelParams
                   ) -> tuple[np.ndarray | None, str | None]:
  """`song_mel_power` [n_mels, <= num_frames] float32 and None, or None and the prep
  report's reason ("<kind>: <message>") for unusable audio."""
  try:
    return song_mel_power(path, params), None
  except AudioError as e:
    return None, f'{e.kind}: {e}'


_power_or_error = power_or_error  # What iter_song_mel_powers calls (tests replace it).


def iter_song_mel_powers(paths: list[str], params: MelParams, num_workers: int = 0,
                         progress: bool = True
                         ) -> Iterator[tuple[np.ndarray | None, str | None]]:
  """`song_mel_power` of many files on `num_workers` threads (0 = all cores), yielded in
  order with at most two songs per worker computed ahead: memory stays that of a few
  songs however many there are.

  Threads, not processes: decoding (libsndfile), resampling (soxr), the FFT and the
  matrix products release the GIL, so threads scale with cores without the seconds a
  process pool spends starting and the copies it makes of every spectrogram. BLAS is
  kept to one thread per worker (the cores are already busy).

  Yields:
    One (mel power [n_mels, <= num_frames] or None, "<kind>: <message>" or None) per
    path, in order; unusable audio is an error entry, never an exception.
  """
  import collections
  import concurrent.futures
  import threadpoolctl
  from tqdm import tqdm
  workers = num_workers or os.cpu_count() or 1
  fn = functools.partial(_power_or_error, params=params)
  with threadpoolctl.threadpool_limits(1, user_api='blas'), tqdm(
      total=len(paths), desc='log-mel', unit='song', disable=not progress) as bar, \
      concurrent.futures.ThreadPoolExecutor(workers) as ex:
    todo, ahead = iter(paths), collections.deque()
    for path in itertools.islice(todo, 2 * workers):
      ahead.append(ex.submit(fn, path))
    while ahead:
      result = ahead.popleft().result()
      for path in itertools.islice(todo, 1):
        ahead.append(ex.submit(fn, path))
      yield result
      bar.update()


def log_mel(path: str, params: MelParams, ref_power: float) -> np.ndarray:
  """The model's audio input for one file: [n_mels, num_frames] float32, dB."""
  return power_to_db(song_mel_power(path, params), ref_power, params.num_frames)

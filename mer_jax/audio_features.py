"""Log-mel spectrogram features.

The feature is the thesis's: librosa load at 22,050 Hz mono, STFT with n_fft 2048 and
hop 512, 128 mel bands (Slaney), power spectrogram converted to dB against a
*dataset-wide* maximum power, floored at -80 dB and truncated or padded (with the
-80 dB floor value) to a fixed number of frames (1292 frames = 30 s).

Extraction is split in two so that the reference can be computed over a dataset:
``mel_power`` (per song, absolute power) and ``power_to_db`` (needs the reference).
This module imports only numpy and librosa so it is cheap in worker processes.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

# Floor and padding value of the features, in dB relative to the dataset max power.
DB_FLOOR = -80.0
# Smallest power considered before taking the log (librosa's default `amin`).
AMIN = 1e-10
# Audio shorter than this (seconds) or with a lower peak amplitude is rejected.
MIN_SECONDS = 1.0
SILENCE_PEAK = 1e-4  # -80 dBFS.
CROPS = ('start', 'center')


class AudioError(ValueError):
  """Audio that cannot be used; `kind` names the problem for reports."""
  kind = 'audio unreadable'


class AudioTooShortError(AudioError):
  kind = 'audio too short'


class SilentAudioError(AudioError):
  kind = 'audio silent'


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


def load_audio(path: str, params: MelParams) -> np.ndarray:
  """Decodes any format libsndfile/audioread reads; returns mono float32 at params.sample_rate.

  Raises:
    AudioError (a ValueError) naming the file when it cannot be decoded, holds no
    samples, is shorter than MIN_SECONDS or silent.
  """
  import librosa  # Imported lazily: it takes a second to import.
  try:
    y, _ = librosa.load(path, sr=params.sample_rate, mono=True)
  except Exception as e:  # librosa raises many types (soundfile, audioread, EOF).
    raise AudioError(f'{path}: cannot decode audio ({type(e).__name__}: {e})') from e
  if y.size == 0:
    raise AudioError(f'{path}: audio file holds no samples')
  seconds = y.size / params.sample_rate
  if seconds < MIN_SECONDS:
    raise AudioTooShortError(f'{path}: audio shorter than {MIN_SECONDS:g} s ({seconds:.2f} s)')
  peak = float(np.max(np.abs(y)))
  if not peak >= SILENCE_PEAK:
    raise SilentAudioError(f'{path}: audio is silent (peak amplitude {peak:.2g})')
  return y


def stream_audio(path: str, params: MelParams, block: int = 1 << 16
                 ) -> Iterator[np.ndarray]:
  """Decodes a file block by block: mono float32 chunks at params.sample_rate whose
  concatenation equals `load_audio`'s waveform (the same libsndfile decode, channel
  mean and soxr 'HQ' resampler, streamed), in memory of one block.

  Formats libsndfile cannot open go through `load_audio` (whole file). Checks
  (empty, too short, silent) are made when the stream ends.

  Raises:
    AudioError naming the file.
  """
  import soundfile as sf
  import soxr
  try:
    f = sf.SoundFile(path)
  except Exception:  # Not a libsndfile format (e.g. M4A): audioread, whole file.
    yield load_audio(path, params)
    return
  n, peak = 0, 0.0
  try:
    with f:
      stream = (soxr.ResampleStream(f.samplerate, params.sample_rate, 1,
                                    dtype='float32', quality='HQ')
                if f.samplerate != params.sample_rate else None)
      while True:
        x = f.read(block, dtype='float32', always_2d=True)
        last = len(x) < block
        y = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
        if stream is not None:
          y = stream.resample_chunk(y, last=last)
        if y.size:
          n += y.size
          peak = max(peak, float(np.max(np.abs(y))))
          yield y
        if last:
          break
  except Exception as e:
    raise AudioError(f'{path}: cannot decode audio ({type(e).__name__}: {e})') from e
  if n == 0:
    raise AudioError(f'{path}: audio file holds no samples')
  if n / params.sample_rate < MIN_SECONDS:
    raise AudioTooShortError(
        f'{path}: audio shorter than {MIN_SECONDS:g} s ({n / params.sample_rate:.2f} s)')
  if not peak >= SILENCE_PEAK:
    raise SilentAudioError(f'{path}: audio is silent (peak amplitude {peak:.2g})')


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


def mel_power(y: np.ndarray, params: MelParams) -> np.ndarray:
  """Mel power spectrogram of the kept window (`crop`): at most `num_frames` frames.

  Args:
    y: mono waveform, float, [samples] at params.sample_rate.
  Returns:
    float32 [n_mels, frames] with frames = min(num_frames, 1 + samples // hop), power
    (amplitude squared), not yet padded.
  """
  import librosa
  s = librosa.feature.melspectrogram(
      y=crop(y, params), sr=params.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length,
      n_mels=params.n_mels, power=2.0)
  return s[:, :params.num_frames].astype(np.float32)


def power_to_db(power: np.ndarray, ref_power: float, num_frames: int) -> np.ndarray:
  """dB against the dataset reference, floored at -80 dB, padded/truncated.

  Args:
    power: [n_mels, frames] mel power.
    ref_power: dataset-wide maximum mel power (0 dB).
    num_frames: output frames; missing frames are filled with -80 dB.
  Returns:
    float32 [n_mels, num_frames] in dB (<= 0 for songs of the reference set).
  """
  if not ref_power > 0:
    raise ValueError(f'reference power must be positive, got {ref_power}')
  db = 10.0 * np.log10(np.maximum(power.astype(np.float64), AMIN))
  db -= 10.0 * np.log10(max(ref_power, AMIN))
  db = np.maximum(db, DB_FLOOR)
  out = np.full((power.shape[0], num_frames), DB_FLOOR, dtype=np.float32)
  n = min(num_frames, power.shape[1])
  out[:, :n] = db[:, :n]
  return out


def song_mel_power(path: str, params: MelParams) -> np.ndarray:
  """Decode + mel power for one file: [n_mels, <= num_frames] float32."""
  return mel_power(load_audio(path, params), params)


def log_mel(path: str, params: MelParams, ref_power: float) -> np.ndarray:
  """The model's audio input for one file: [n_mels, num_frames] float32, dB."""
  return power_to_db(song_mel_power(path, params), ref_power, params.num_frames)

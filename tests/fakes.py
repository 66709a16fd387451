"""Generated audio for tests that build release layouts."""

import os

import numpy as np
import soundfile as sf


def write_audio(path: str, seconds: float = 2.0, sr: int = 22050, channels: int = 1,
                seed: int = 0, fmt: str | None = None) -> str:
  """Noise + a tone; the format follows the extension (MP3 by libsndfile) or `fmt`."""
  rng = np.random.default_rng(seed)
  n = int(seconds * sr)
  t = np.arange(n) / sr
  y = 0.05 * rng.standard_normal((n, channels)) + 0.2 * np.sin(
      2 * np.pi * rng.uniform(100, 2000) * t)[:, None]
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if fmt is None and path.endswith('.mp3'):
    fmt = 'MP3'
  sf.write(path, y.squeeze().astype(np.float32), sr, format=fmt)
  return path

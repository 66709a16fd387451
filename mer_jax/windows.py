"""Analysis windows of long songs for prediction: where they start, and the windows of
a waveform that arrives in chunks (decoded as a stream)."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np


def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
  """Sample offsets of the analysis windows: every `hop` samples while a whole window
  fits, plus a last window ending at the end of the song; one window at 0 when the
  song is no longer than a window."""
  if num_samples <= window:
    return [0]
  starts = list(range(0, num_samples - window + 1, hop))
  if starts[-1] + window < num_samples:
    starts.append(num_samples - window)
  return starts


def sliding_windows(chunks: Iterable[np.ndarray], window: int, hop: int
                    ) -> Iterator[tuple[int, np.ndarray]]:
  """The windows of `window_starts` over a waveform that arrives in chunks: yields
  (start, samples) while holding at most a window plus a chunk in memory."""
  buf = np.zeros(0, np.float32)
  offset = 0  # Sample index of buf[0].
  next_start = 0
  total = 0
  emitted_last_end = 0
  for chunk in chunks:
    buf = np.concatenate([buf, chunk])
    total += chunk.size
    while next_start + window <= total:
      yield next_start, buf[next_start - offset:next_start - offset + window]
      emitted_last_end = next_start + window
      next_start += hop
    keep_from = max(min(next_start, total - window), 0)  # The last window may end here.
    if keep_from > offset:
      buf = buf[keep_from - offset:]
      offset = keep_from
  if not emitted_last_end:  # Shorter than a window: the whole song.
    if total:
      yield 0, buf[:total]
  elif emitted_last_end < total:
    yield total - window, buf[total - window - offset:]

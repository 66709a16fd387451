"""One song's example and what decides it, shared by the two paths of preparation:
the local one (`data_prep.prepare.compute_examples`) and Apache Beam's
(`data_prep.beam_prep`), so that both write the same data.

The skips decided before decoding (`check_songs`), the dB reference (`in_reference`,
`no_reference_error`), the example (`make_example`), the prep report's rows
(`report_rows`) and metadata.json (`prep_metadata`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from data_prep import lyrics as lyrics_lib
from data_prep import manifest as manifest_lib
from mer_jax import audio_features


def quadrant_note(song: manifest_lib.Song) -> str:
  """The prep report's note for a song whose official quadrant differs from the one
  its valence/arousal give at the 0.5 thresholds ('' otherwise)."""
  q = song.official_quadrant
  if q < 0 or q == song.quadrant:
    return ''
  names = manifest_lib.QUADRANTS
  return (f'official quadrant {names[q]} differs from {names[song.quadrant]} of its '
          f'valence {song.valence:g} / arousal {song.arousal:g} at the 0.5 thresholds')


def report_rows(songs: list[manifest_lib.Song], report: dict[str, str | None],
                skipped: list[dict], n_written: int, frames: dict[str, int]
                ) -> list[dict]:
  """The prep report's rows (every input row: written with its mel frames before
  padding, or skipped with its reason); checks that rows in = rows written + rows
  skipped and logs each skip."""
  rows = [{'item_id': s.song_id, 'split': s.split,
           'status': 'skipped' if report[s.song_id] else 'written',
           'reason': report[s.song_id] or '', 'note': quadrant_note(s),
           'frames': '' if report[s.song_id] else frames[s.song_id]} for s in songs]
  rows += [{'note': '', 'frames': '', **r, 'status': 'skipped'} for r in skipped]
  n_skipped = sum(r['status'] == 'skipped' for r in rows)
  n_in = len(songs) + len(skipped)
  if n_written + n_skipped != n_in:  # Every input row is accounted for.
    raise AssertionError(f'{n_in} rows in, {n_written} written + {n_skipped} skipped')
  for r in rows:
    if r['status'] == 'skipped':
      logging.warning('skipped %s (%s): %s', r['item_id'], r['split'], r['reason'])
  return rows


def check_songs(songs: list[manifest_lib.Song], require_lyrics: bool = True,
                extra: Any = None) -> tuple[dict[str, str | None], dict[str, str]]:
  """The skips decided before any audio is decoded: audio file missing, a directory or
  0 bytes; lyrics missing, not UTF-8 or empty; the front-end's own (`extra.skips`).

  Returns:
    (song id -> skip reason or None for every song, song id -> lyrics text of the
    songs not skipped).
  """
  report = {s.song_id: None for s in songs}
  texts = {}
  for s in songs:
    try:
      audio_features.check_file(s.audio_path)
    except audio_features.AudioError as e:
      report[s.song_id] = f'{e.kind}: {e}'
      continue
    text, reason = lyrics_lib.read_lyrics(s.lyrics_path, require_lyrics)
    if reason:
      report[s.song_id] = reason
    else:
      texts[s.song_id] = text
  if extra is not None and extra.skips is not None:
    report.update(extra.skips([s for s in songs if report[s.song_id] is None]))
  return report, texts


def in_reference(song: manifest_lib.Song, ref_split: str) -> bool:
  """Whether the song's mel power counts toward the dB reference (its max power)."""
  return ref_split in (song.split, 'all')


def no_reference_error(ref_split: str) -> ValueError:
  return ValueError(f'no readable song in the {ref_split!r} split: cannot compute the '
                    'dB reference power')


def make_example(s: manifest_lib.Song, power: np.ndarray, max_power: float,
                 token_ids: np.ndarray, attention_mask: np.ndarray,
                 params: audio_features.MelParams, extra: Any = None) -> dict:
  """One song's example: `power` [n_mels, <= num_frames] mel power -> the log-mel in dB
  against `max_power`; token ids and mask [max_length] int32; labels; the front-end's
  features (`extra.example`)."""
  ex = extra.example(s) if extra is not None and extra.example is not None else {}
  return {**ex,
      'song_id': s.song_id,
      # Kept below the model's -80 dB floor (applied when read): re-referencing to
      # another dataset's max power stays exact (audio_features.STORED_FLOOR).
      'mel': audio_features.power_to_db(power, max_power, params.num_frames,
                                        floor=audio_features.STORED_FLOOR),
      'token_ids': token_ids, 'attention_mask': attention_mask,
      'valence': np.float32(s.valence), 'arousal': np.float32(s.arousal),
      'quadrant': s.quadrant, 'official_quadrant': np.int32(s.official_quadrant),
      'congruent': np.int32(s.congruent),
      'valence_std': np.float32(s.valence_std), 'arousal_std': np.float32(s.arousal_std)}


def prep_metadata(max_power: float, params: audio_features.MelParams, encoder: str,
                  max_length: int, ref_split: str, n_written: int, n_skipped: int
                  ) -> dict:
  """The prepared dataset's metadata.json: `max_power` (the mel power that is 0 dB)
  and every feature parameter."""
  return {'max_power': max_power, 'mel_params': params.to_dict(),
          'stored_floor_db': audio_features.STORED_FLOOR,
          'encoder': encoder, 'max_length': max_length, 'ref_split': ref_split,
          'num_written': n_written, 'num_skipped': n_skipped}

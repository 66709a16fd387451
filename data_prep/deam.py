"""DEAM (MediaEval Database for Emotional Analysis in Music), read exactly as released.

    <root>/MEMD_audio/<song_id>.mp3                 (or <root>/DEAM_audio/MEMD_audio/)
    <root>/annotations/annotations averaged per song/song_level/   (or under DEAM_Annotations/)
      static_annotations_averaged_songs_1_2000.csv     " song_id, valence_mean, valence_std, ..."
      static_annotations_averaged_songs_2000_2058.csv  (adds max/min columns)

Column names and values are padded with spaces. Labels are on a 1..9 scale and are mapped
to 0..1 as (x - 1) / 8 (standard deviations as x / 8). DEAM has no lyrics: it is
audio-only. Clips are about 45 s, the 2015 songs are whole songs: configs/exp2_deam.py
keeps the *centred* 30 s window of every song (`config.audio.crop = 'center'`). There is
no official split: a seeded split stratified by quadrant is written once next to the
prepared data. `read_songs(config)` is the 'deam' source of `data_prep.prepare`;
`read_release` takes the release folder and split file explicitly.
"""

from __future__ import annotations

import dataclasses
import glob
import os

import ml_collections

from data_prep import tables
from data_prep.manifest import Song
from data_prep.tables import DatasetNotFoundError, ManifestError

DOWNLOAD = ('DEAM is distributed by its authors (MediaEval 2013-2015, "DEAM_audio.zip" '
            'and "DEAM_Annotations.zip"); unzip both into one folder and pass it as '
            '--config.data.root')
_SONG_LEVEL = os.path.join('annotations', 'annotations averaged per song', 'song_level')


def _find(root: str, *candidates: str) -> str | None:
  for c in candidates:
    p = os.path.join(root, c)
    if os.path.exists(p):
      return p
  return None


def layout(root: str) -> tuple[str, list[str]]:
  """(audio folder, annotation CSVs); raises DatasetNotFoundError saying what is missing."""
  root = os.path.abspath(os.path.expanduser(root or '.'))
  audio = _find(root, 'MEMD_audio', os.path.join('DEAM_audio', 'MEMD_audio'))
  ann_dir = _find(root, _SONG_LEVEL, os.path.join('DEAM_Annotations', _SONG_LEVEL))
  missing = []
  if audio is None:
    missing.append(f'{os.path.join(root, "MEMD_audio")} (audio)')
  csvs = sorted(glob.glob(os.path.join(ann_dir, 'static_annotations_averaged_songs_*.csv'))
                ) if ann_dir else []
  if not csvs:
    missing.append(f'{os.path.join(root, _SONG_LEVEL)}/static_annotations_averaged_songs_'
                   '*.csv (annotations)')
  if missing:
    raise DatasetNotFoundError(f'DEAM not found under {root} (config.data.root): missing '
                               + '; '.join(missing) + '. ' + DOWNLOAD)
  return audio, csvs


def to_unit(x: float) -> float:
  """DEAM's 1..9 scale -> 0..1."""
  return (x - 1.0) / 8.0


def locate(config: ml_collections.ConfigDict) -> None:
  """Raises DatasetNotFoundError when the release is not under `config.data.root`."""
  layout(config.data.root)


def read_songs(config: ml_collections.ConfigDict
               ) -> tuple[list[Song], list[dict], list[str]]:
  """The 'deam' source: `read_release` of `config.data.root` with the split seeded by
  `config.data.split_seed` (stored under `config.data.data_dir`).

  Raises:
    ValueError when `config.data.lyrics` asks for lyrics: DEAM has none.
  """
  if config.data.lyrics:
    raise ValueError('DEAM has no lyrics: set config.data.lyrics = False and '
                     "config.model.modality = 'audio' (see configs/exp2_deam.py)")
  from data_prep import splits
  return read_release(config.data.root, splits.stored_split_path(config),
                      config.data.split_seed)


def read_release(root: str, split_path: str, seed: int = 0
                 ) -> tuple[list[Song], list[dict], list[str]]:
  """Every annotated DEAM song under `root` (see `layout`), with the split stored at
  `split_path` (made with `seed` on first use).

  Returns:
    (songs in annotation-file order, skipped rows: labels missing or outside 1..9, the
    index files read: the annotation CSVs in name order, then the split file). Labels
    and their standard deviations come back on the 0..1 scale.
  """
  from data_prep import splits
  audio, csvs = layout(root)
  rows, skipped, seen = [], [], {}
  for path in csvs:
    df = tables.read_csv(path, ['song_id', 'valence_mean', 'arousal_mean'],
                         skipinitialspace=True)
    for i, r in enumerate(df.to_dict('records')):
      sid = r['song_id'].strip()
      where = f'{os.path.basename(path)} row {i + 2}'
      if sid in seen:
        raise ManifestError(f'{path} row {i + 2}: song_id {sid!r} already in {seen[sid]}')
      seen[sid] = where
      v, a = tables.number(r['valence_mean']), tables.number(r['arousal_mean'])
      if not (1 <= v <= 9 and 1 <= a <= 9):
        skipped.append({'item_id': sid, 'split': '', 'reason': (
            f'label missing or outside 1..9: valence {r["valence_mean"].strip()!r}, '
            f'arousal {r["arousal_mean"].strip()!r} ({where})')})
        continue

      def std(col):  # NaN where the file has no such column or cell.
        return tables.number(r.get(col, '')) / 8.0
      rows.append(Song(song_id=sid, audio_path=os.path.join(audio, sid + '.mp3'),
                       lyrics_path=None, valence=to_unit(v), arousal=to_unit(a),
                       split='', valence_std=std('valence_std'),
                       arousal_std=std('arousal_std')))
  split = splits.load_or_create(split_path, [s.song_id for s in rows],
                                [s.quadrant for s in rows], seed)
  songs = [dataclasses.replace(s, split=split[s.song_id]) for s in rows]
  return songs, skipped, csvs + [split_path]

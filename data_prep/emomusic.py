"""EmoMusic ("1000 Songs for Emotional Analysis of Music", Soleymani et al. 2013), read
exactly as released: the EMO task of MARBLE and MERT, a column of Music2Emo's table.

    <root>/   (or the one folder inside it that holds annotations/)
      annotations/static_annotations.csv   song_id,mean_arousal,std_arousal,mean_valence,
                                           std_valence   (1..9; some copies name them
                                           arousal_mean, ...; cells may be padded)
      songs_info.csv                       song_id,file_name,Artist,Song title,...,Genre,
                                           Mediaeval 2013 set   (development | evaluation)
      clips_45seconds/<song_id>.mp3        45 s excerpts (found anywhere under the root,
                                           by song id or songs_info's file_name)

744 songs after the curators removed duplicates. Labels 1..9 -> 0..1 as (x - 1) / 8,
standard deviations / 8, as for DEAM; audio-only. `config.data.split`:
  'mediaeval2013'  test = MediaEval 2013's evaluation set; the development set is cut
                   80/20 into train/validation, seeded and stratified by quadrant (the
                   split of MARBLE's EMO task and Music2Emo: 619 development, 125 test);
  'seeded'         70/15/15 of all songs, seeded and stratified (as PMEmo, DEAM).
The seeded part is stored once next to the prepared data (`data_prep.splits`).
`read_songs(config)` is the 'emomusic' source of `data_prep.prepare`.
"""

from __future__ import annotations

import dataclasses
import os

import ml_collections

from data_prep import tables
from data_prep.deam import to_unit
from data_prep.manifest import Song
from data_prep.tables import DatasetNotFoundError, ManifestError

DOWNLOAD = ('EmoMusic is distributed by its authors: the Geneva CVML databases page '
            '(cvml.unige.ch, "emoMusic": "1000 songs for emotional analysis of music"); '
            'unzip the clips and annotations into one folder and pass it as '
            '--config.data.root')
ANNOTATIONS = os.path.join('annotations', 'static_annotations.csv')
SONGS_INFO = 'songs_info.csv'
CLIPS = 'clips_45seconds'
SPLITS = ('mediaeval2013', 'seeded')
AUDIO_EXTENSIONS = ('.mp3', '.wav', '.flac', '.ogg')


def release_dir(root: str) -> str:
  """The folder holding annotations/static_annotations.csv: `root` or its one
  subfolder that does (a zip unpacked into its own folder).

  Raises:
    DatasetNotFoundError naming what was looked for and where to download it.
  """
  root = os.path.abspath(os.path.expanduser(root or '.'))
  if os.path.isfile(os.path.join(root, ANNOTATIONS)):
    return root
  inside = sorted(d for d in (os.listdir(root) if os.path.isdir(root) else ())
                  if os.path.isfile(os.path.join(root, d, ANNOTATIONS)))
  if len(inside) == 1:
    return os.path.join(root, inside[0])
  what = root if not os.path.isdir(root) else os.path.join(root, ANNOTATIONS)
  raise DatasetNotFoundError(f'EmoMusic not found (config.data.root = {root}): missing '
                             f'{what}. ' + DOWNLOAD)


def _column(df_columns: list[str], path: str, stat: str, dim: str) -> str:
  """The column holding `stat` ('mean' | 'std') of `dim`, by name: mean_arousal or
  arousal_mean, any case."""
  want = {f'{stat}_{dim}', f'{dim}_{stat}'}
  found = [c for c in df_columns if c.strip().lower() in want]
  if not found:
    raise ManifestError(f'{path}: no column for the {stat} of {dim} (looked for '
                        f'{" or ".join(sorted(want))}); found {", ".join(df_columns)}')
  return found[0]


def _audio_index(base: str) -> dict[str, str]:
  """file name -> path of every audio file under `base` (the clips folder's first)."""
  index = {}
  for top in (os.path.join(base, CLIPS), base):
    for folder, dirs, files in os.walk(top):
      dirs.sort()
      for f in sorted(files):
        if f.lower().endswith(AUDIO_EXTENSIONS):
          index.setdefault(f, os.path.join(folder, f))
  return index


def read_info(path: str) -> dict[str, dict[str, str]]:
  """song id -> {'file_name', 'set'} of songs_info.csv (cells stripped of padding; 'set'
  is the MediaEval 2013 set lower-cased, '' when the column is absent)."""
  df = tables.read_csv(path, ['song_id', 'file_name'], skipinitialspace=True)
  set_col = next((c for c in df.columns if 'mediaeval' in c.lower()), None)
  out = {}
  for i, r in enumerate(df.to_dict('records')):
    sid = r['song_id'].strip()
    if sid in out:
      raise ManifestError(f'{path} row {i + 2}: song_id {sid!r} listed twice')
    out[sid] = {'file_name': r['file_name'].strip(),
                'set': r[set_col].strip().lower() if set_col else ''}
  return out


def locate(config: ml_collections.ConfigDict) -> None:
  """Raises DatasetNotFoundError when the release is not under `config.data.root`."""
  release_dir(config.data.root)


def read_songs(config: ml_collections.ConfigDict
               ) -> tuple[list[Song], list[dict], list[str]]:
  """The 'emomusic' source: `read_release` of `config.data.root` with `config.data.split`
  and the seeded part stored under `config.data.data_dir` (seed `config.data.split_seed`).

  Raises:
    ValueError when `config.data.lyrics` asks for lyrics (EmoMusic has none) or the
    split is not one of SPLITS.
  """
  if config.data.lyrics:
    raise ValueError('EmoMusic has no lyrics: set config.data.lyrics = False and '
                     "config.model.modality = 'audio' (see configs/exp2_emomusic.py)")
  from data_prep import splits
  split = config.data.split
  if split not in SPLITS:
    raise ValueError(f'EmoMusic: config.data.split must be one of {SPLITS}, got {split!r}')
  return read_release(config.data.root, splits.stored_split_path(config, split), split,
                      config.data.split_seed)


def read_release(root: str, split_path: str, split: str = 'mediaeval2013', seed: int = 0
                 ) -> tuple[list[Song], list[dict], list[str]]:
  """Every annotated EmoMusic song under `root` (see `release_dir`).

  Returns:
    (songs in annotation order, skipped rows: labels missing or outside 1..9, the index
    files read: annotations, songs_info, stored split). Labels and standard deviations
    on 0..1. A song whose clip is not found keeps the path it should have
    (<release>/clips_45seconds/<id>.mp3): preparation lists it as missing audio.

  Raises:
    DatasetNotFoundError: no annotations, songs_info.csv or audio under the release.
    ManifestError: a column not found, a song listed twice, an annotated song missing
      from songs_info.csv, or (mediaeval2013) a MediaEval set that is not development
      or evaluation.
  """
  from data_prep import splits
  base = release_dir(root)
  ann_path, info_path = os.path.join(base, ANNOTATIONS), os.path.join(base, SONGS_INFO)
  if not os.path.isfile(info_path):
    raise DatasetNotFoundError(f'EmoMusic: missing {info_path} (song files and MediaEval '
                               'sets). ' + DOWNLOAD)
  audio = _audio_index(base)
  if not audio:
    raise DatasetNotFoundError(f'EmoMusic: no audio under {base} (expected '
                               f'{os.path.join(base, CLIPS)}/<song_id>.mp3). ' + DOWNLOAD)
  info = read_info(info_path)
  df = tables.read_csv(ann_path, ['song_id'], skipinitialspace=True)
  cols = {(s, d): _column(list(df.columns), ann_path, s, d)
          for s in ('mean', 'std') for d in ('valence', 'arousal')}
  rows, skipped, seen = [], [], {}
  for i, r in enumerate(df.to_dict('records')):
    sid, where = r['song_id'].strip(), f'{ann_path} row {i + 2}'
    if sid in seen:
      raise ManifestError(f'{where}: song_id {sid!r} already on row {seen[sid]}')
    seen[sid] = i + 2
    v, a = (tables.number(r[cols['mean', d]]) for d in ('valence', 'arousal'))
    if not (1 <= v <= 9 and 1 <= a <= 9):  # NaN fails too.
      skipped.append({'item_id': sid, 'split': '', 'reason': (
          f'label missing or outside 1..9: valence {r[cols["mean", "valence"]].strip()!r}, '
          f'arousal {r[cols["mean", "arousal"]].strip()!r} ({where})')})
      continue
    rows.append(Song(song_id=sid, audio_path='', lyrics_path=None, valence=to_unit(v),
                     arousal=to_unit(a), split='',
                     valence_std=tables.number(r[cols['std', 'valence']]) / 8,
                     arousal_std=tables.number(r[cols['std', 'arousal']]) / 8))
  absent = [s.song_id for s in rows if s.song_id not in info]
  if absent:
    raise ManifestError(f'{info_path}: no row for {len(absent)} annotated song(s) '
                        f'({", ".join(absent[:10])}{" ..." if len(absent) > 10 else ""})')
  fixed, fractions = {}, (0.7, 0.15, 0.15)
  if split == 'mediaeval2013':
    sets = {s.song_id: info[s.song_id]['set'] for s in rows}
    bad = sorted({v for v in sets.values() if v not in ('development', 'evaluation')})
    if bad:
      raise ManifestError(f'{info_path}: the "Mediaeval 2013 set" column must say '
                          f'development or evaluation, found {", ".join(map(repr, bad))}'
                          "; or use --config.data.split=seeded")
    fixed = {i: 'test' for i, v in sets.items() if v == 'evaluation'}
    fractions = (0.8, 0.2, 0.0)
  assignment = splits.load_or_create(split_path, [s.song_id for s in rows],
                                     [s.quadrant for s in rows], seed, fractions, fixed)

  def path_of(sid: str) -> str:
    for name in (info[sid]['file_name'], f'{sid}.mp3'):
      if name in audio:
        return audio[name]
    return os.path.join(base, CLIPS, f'{sid}.mp3')
  songs = [dataclasses.replace(s, split=assignment[s.song_id], audio_path=path_of(s.song_id))
           for s in rows]
  return songs, skipped, [ann_path, info_path, split_path]

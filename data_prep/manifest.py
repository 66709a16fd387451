"""CSV manifest of songs: the demo dataset and a user's own songs go through this reader.

`read_songs(config)` is the 'manifest' source of `data_prep.prepare`; prediction reads
a manifest without labels through `read_manifest(path, require_labels=False)`.

Columns (header required, extra columns are ignored unless named below):
  song_id      unique id (any string without commas).
  audio_path   audio file; relative paths are resolved against the manifest's folder.
  lyrics_path  UTF-8 lyrics text file (relative paths likewise); empty for none.
  valence      0..1 (0 = negative, 1 = positive); optional for prediction only.
  arousal      0..1 (0 = calm, 1 = energetic); optional for prediction only.
  split        train | validation | test.
  congruent    optional: 1 if lyrics and audio express the same valence, 0 if not.
  quadrant     optional: the song's own quadrant label (Q1..Q4), e.g. a curated one;
               quadrant metrics use it with config.eval.quadrant_source = 'official'.
  valence_std, arousal_std
               optional: the annotators' rating std (0..1 scale, >= 0; empty for
               none), the target spread of config.train.loss = 'annotator_kl' and
               what predicted sigmas are compared with.
"""

from __future__ import annotations

import dataclasses
import math
import os

import ml_collections

from data_prep import tables
# Re-exported: mer_jax, the tests and users import it from here.
from data_prep.tables import ManifestError

REQUIRED_COLUMNS = ('song_id', 'audio_path', 'lyrics_path', 'valence', 'arousal', 'split')
SPLITS = ('train', 'validation', 'test')
QUADRANTS = ('Q1', 'Q2', 'Q3', 'Q4')
# An unlabelled manifest without a split column: train / validation / test fractions.
UNLABELLED_SPLIT = (0.9, 0.1, 0.0)


@dataclasses.dataclass(frozen=True)
class Song:
  song_id: str
  audio_path: str  # Absolute.
  lyrics_path: str | None  # Absolute, or None when the manifest gives none.
  valence: float  # 0..1.
  arousal: float  # 0..1.
  split: str  # One of SPLITS.
  congruent: int = -1  # 1, 0, or -1 when unknown.
  valence_std: float = float('nan')  # Annotator spread (0..1 scale) where released.
  arousal_std: float = float('nan')
  # The release's own quadrant label (0..3, e.g. MERGE's split files), -1 when none.
  official_quadrant: int = -1

  @property
  def quadrant(self) -> int:
    return quadrant(self.valence, self.arousal)


def quadrant(valence: float, arousal: float) -> int:
  """Russell quadrant index 0..3 for Q1 (+v +a), Q2 (-v +a), Q3 (-v -a), Q4 (+v -a).

  Values of exactly 0.5 count as positive.
  """
  if arousal >= 0.5:
    return 0 if valence >= 0.5 else 1
  return 3 if valence >= 0.5 else 2


def _label(value: str, column: str, where: str, required: bool = True) -> float:
  if not value.strip():
    if not required:
      return float('nan')
    raise ManifestError(f'{where}: {column} is missing')
  try:
    x = float(value)
  except ValueError:
    raise ManifestError(f'{where}: {column} {value!r} is not a number') from None
  if not math.isfinite(x):
    raise ManifestError(f'{where}: {column} is {value.strip()!r}, not a number in 0..1 '
                        '(leave the cell empty where there is no label)')
  if not 0.0 <= x <= 1.0:
    raise ManifestError(f'{where}: {column} {x} is outside 0..1')
  return x


def read_manifest(path: str, require_labels: bool = True) -> list[Song]:
  """Reads and validates a manifest; paths come back absolute.

  With `require_labels=False` (prediction) the valence/arousal columns may be absent or
  empty: those labels are NaN. `split` is then optional too ('test' when absent).

  Raises:
    ManifestError naming the file (and the row, counted as in a spreadsheet with the
    header on row 1) for a missing column, a duplicate id, a bad label or split.
    Whether the audio/lyrics files exist is checked when features are computed, where
    a missing file becomes a skip listed in the prep report.
  """
  _require(path)
  import pandas as pd  # Here: quadrant() etc. are used without reading a CSV.
  required = REQUIRED_COLUMNS if require_labels else ('song_id', 'audio_path')
  try:
    df = tables.read_csv(path, required, skipinitialspace=True)
  except (pd.errors.ParserError, UnicodeDecodeError) as e:
    raise ManifestError(f'{path}: not a readable CSV ({e})') from None
  for c in ('lyrics_path', 'valence', 'arousal', 'split'):
    if c not in df.columns:  # Optional here: read_csv checked the required ones.
      df[c] = 'test' if c == 'split' else ''
  base = os.path.dirname(os.path.abspath(path))
  songs, seen = [], {}
  for i, row in enumerate(df.to_dict('records')):
    where = f'{path} row {i + 2}'
    sid = row['song_id'].strip()
    if not sid:
      raise ManifestError(f'{where}: empty song_id')
    if sid in seen:
      raise ManifestError(f'{where}: song_id {sid!r} already used on row {seen[sid]}')
    seen[sid] = i + 2
    split = row['split'].strip()
    if split not in SPLITS:
      raise ManifestError(f'{where}: split {split!r} is not one of {SPLITS}')
    audio = row['audio_path'].strip()
    if not audio:
      raise ManifestError(f'{where}: empty audio_path')
    lyrics = row['lyrics_path'].strip()
    congruent = row.get('congruent', '').strip()
    if congruent not in ('', '0', '1'):
      raise ManifestError(f'{where}: congruent {congruent!r} must be 0, 1 or empty')
    official = row.get('quadrant', '').strip().upper()
    if official not in ('',) + QUADRANTS:
      raise ManifestError(f'{where}: quadrant {official!r} must be one of {QUADRANTS} '
                          'or empty')
    songs.append(Song(
        song_id=sid,
        audio_path=os.path.join(base, os.path.expanduser(audio)),
        lyrics_path=os.path.join(base, os.path.expanduser(lyrics)) if lyrics else None,
        valence=_label(row['valence'], 'valence', where, require_labels),
        arousal=_label(row['arousal'], 'arousal', where, require_labels),
        split=split,
        congruent=int(congruent) if congruent else -1,
        # Optional annotator std: NaN when the column or cell is empty.
        valence_std=_label(row.get('valence_std', ''), 'valence_std', where, False),
        arousal_std=_label(row.get('arousal_std', ''), 'arousal_std', where, False),
        official_quadrant=QUADRANTS.index(official) if official else -1))
  if not songs:
    raise ManifestError(f'{path}: manifest has no rows')
  return songs


def _path(config: ml_collections.ConfigDict) -> str:
  return os.path.expanduser(config.data.manifest
                            or os.path.join(config.data.root, 'manifest.csv'))


def _require(path: str) -> None:
  if not os.path.isfile(path):
    raise ManifestError(f'{path}: manifest file not found')


def locate(config: ml_collections.ConfigDict) -> None:
  """Raises ManifestError when the manifest file is not there."""
  _require(_path(config))


def read_songs(config: ml_collections.ConfigDict
               ) -> tuple[list[Song], list[dict], list[str]]:
  """The 'manifest' source: (songs, skipped rows: none, [the manifest read]).

  Reads `config.data.manifest`, or `<config.data.root>/manifest.csv` when that is ''
  (`~` expanded). Every row must be valid (`read_manifest`), so nothing is skipped here;
  rows whose files are missing are skipped later, when features are computed.
  `config.data.labels = False` (an unlabelled library, for pretraining): only song_id
  and audio_path are needed, labels are NaN, and a manifest without a split column
  gets a seeded train/validation split (90/10, `config.data.split_seed`), stored
  beside the prepared data as the releases' seeded splits are.
  """
  path = _path(config)
  labels = config.data.get('labels', True)
  songs = read_manifest(path, require_labels=labels)
  if labels or 'split' in tables.read_csv(path, ('song_id',), nrows=0).columns:
    return songs, [], [path]
  from data_prep import splits
  stored = splits.stored_split_path(config, f'unlabelled_{config.data.name}')
  split = splits.load_or_create(stored, [s.song_id for s in songs], [0] * len(songs),
                                config.data.split_seed, UNLABELLED_SPLIT)
  return [dataclasses.replace(s, split=split[s.song_id]) for s in songs], [], [path, stored]

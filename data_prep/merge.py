"""MERGE v1.1 (Louro et al., Zenodo record 13939205), read exactly as unzipped.

    <root>/MERGE_Bimodal_Complete/
      merge_bimodal_complete_av_values.csv   Audio_Song,Lyric_Song,Arousal,Valence (0..1)
      audio/Q1..Q4/<Audio_Song>.mp3
      lyrics/Q1..Q4/<Lyric_Song>.txt
      tvt_dataframes/tvt_70_15_15/tvt_70_15_15_{train,validate,test}_bimodal_complete.csv
    <root>/MERGE_Audio_Complete/
      merge_audio_complete_av_values.csv     Song,Arousal,Valence
      Q1..Q4/<Song>.mp3
      tvt_dataframes/.../tvt_*_{train,validate,test}_audio_complete.csv

`config.data.root` may be the folder holding `MERGE_<Variant>/` or that folder itself.
Audio and lyrics are paired only through the av_values rows (`A001` pairs with `L051`);
the quadrant comes from the split files and is checked against the values.
`read_songs(config)` is the 'merge' source of `data_prep.prepare`; `read_release` reads
one variant and split given explicitly.
"""

from __future__ import annotations

import logging
import os

import ml_collections
import pandas as pd

from data_prep import tables
from data_prep.manifest import QUADRANTS, Song, quadrant
# DatasetNotFoundError is re-exported: the tests and users import it from here.
from data_prep.tables import DatasetNotFoundError, ManifestError

VARIANTS = ('bimodal_complete', 'bimodal_balanced', 'audio_complete', 'audio_balanced')
SPLITS = ('70_15_15', '40_30_30')
DOWNLOAD = ('MERGE v1.1 is downloaded from Zenodo (record 13939205, "MERGE - A Bimodal '
            'Audio-Lyrics Dataset for Static Music Emotion Recognition"); unzip '
            'MERGE_{folder}.zip and pass the folder that holds MERGE_{folder}/ as '
            '--config.data.root')


def _folder_name(variant: str) -> str:
  return 'MERGE_' + '_'.join(p.capitalize() for p in variant.split('_'))


def dataset_dir(root: str, variant: str) -> str:
  """The `MERGE_<Variant>` folder; raises DatasetNotFoundError saying what is missing."""
  if variant not in VARIANTS:
    raise ValueError(f'config.data.merge_variant must be one of {VARIANTS}, got {variant!r}')
  name = _folder_name(variant)
  root = os.path.abspath(os.path.expanduser(root or '.'))
  base = root if os.path.basename(root) == name else os.path.join(root, name)
  av = os.path.join(base, f'merge_{variant}_av_values.csv')
  if not os.path.isfile(av):
    what = (f'the folder {base}' if not os.path.isdir(base) else f'the file {av}')
    raise DatasetNotFoundError(
        f'MERGE {variant} not found: looked for {av} (config.data.root = {root}); '
        f'missing: {what}. ' + DOWNLOAD.format(folder=name[len('MERGE_'):]))
  return base


def _av_values(base: str, variant: str) -> tuple[str, pd.DataFrame]:
  """(path, rows as str indexed by audio song id) of the variant's av_values CSV."""
  path = os.path.join(base, f'merge_{variant}_av_values.csv')
  bimodal = variant.startswith('bimodal')
  key = 'Audio_Song' if bimodal else 'Song'
  av = tables.read_csv(path, [key, 'Arousal', 'Valence'] +
                       (['Lyric_Song'] if bimodal else []))
  dup = av[key][av[key].duplicated()]
  if len(dup):
    raise ManifestError(f'{path}: song id {dup.iloc[0]!r} appears more than once')
  return path, av.set_index(key)


def locate(config: ml_collections.ConfigDict) -> None:
  """Raises DatasetNotFoundError when the variant is not under `config.data.root`."""
  dataset_dir(config.data.root, config.data.merge_variant)


def read_songs(config: ml_collections.ConfigDict
               ) -> tuple[list[Song], list[dict], list[str]]:
  """The 'merge' source: `read_release` of `config.data.root`, `config.data.merge_variant`
  and `config.data.split`."""
  return read_release(config.data.root, config.data.merge_variant, config.data.split)


def read_release(root: str, variant: str = 'bimodal_complete',
                 split: str = '70_15_15') -> tuple[list[Song], list[dict], list[str]]:
  """Songs of one MERGE variant and official split.

  Args:
    root: the folder holding `MERGE_<Variant>/`, or that folder itself.
    variant: one of VARIANTS.
    split: the official split, one of SPLITS (train/validate/test percentages).

  Returns:
    (songs in split-file order, skipped rows, the CSV files read). An av_values row in
    no split file, or a split-file song without an av_values row, is skipped with its
    reason; a song in two split files is an error (leakage). The split file's quadrant
    is the song's `official_quadrant`; songs where it disagrees with their valence /
    arousal values are kept (prep_report lists them with a note).
  """
  if split not in SPLITS:
    raise ValueError(f'config.data.split must be one of {SPLITS}, got {split!r}')
  base = dataset_dir(root, variant)
  bimodal = variant.startswith('bimodal')
  av_path, av = _av_values(base, variant)
  files = [av_path]
  songs, skipped, mismatched, split_of = [], [], [], {}
  for part, name in (('train', 'train'), ('validate', 'validation'), ('test', 'test')):
    path = os.path.join(base, 'tvt_dataframes', f'tvt_{split}',
                        f'tvt_{split}_{part}_{variant}.csv')
    if not os.path.isfile(path):
      raise DatasetNotFoundError(f'MERGE split file missing: {path}. ' + DOWNLOAD.format(
          folder=_folder_name(variant)[len('MERGE_'):]))
    files.append(path)
    rows = tables.read_csv(path, ['Song', 'Quadrant'])
    for i, r in enumerate(rows.to_dict('records')):
      sid, q = r['Song'].strip(), r['Quadrant'].strip()
      if q not in QUADRANTS:
        raise ManifestError(f'{path} row {i + 2}: quadrant {q!r} is not one of {QUADRANTS}')
      if sid in split_of:
        raise ManifestError(f'{path} row {i + 2}: song {sid!r} is also in the '
                            f'{split_of[sid]} split (train/validation/test leakage)')
      split_of[sid] = name
      if sid not in av.index:
        skipped.append({'item_id': sid, 'split': name, 'reason': (
            f'no valence/arousal row: {sid} is in {os.path.basename(path)} but not in '
            f'{os.path.basename(av_path)}')})
        continue
      a = av.loc[sid]
      try:
        valence, arousal = float(a['Valence']), float(a['Arousal'])
      except ValueError:
        valence = arousal = float('nan')
      if not (0 <= valence <= 1 and 0 <= arousal <= 1):
        skipped.append({'item_id': sid, 'split': name, 'reason': (
            f'label missing or outside 0..1: valence {a["Valence"]!r}, arousal '
            f'{a["Arousal"]!r} ({os.path.basename(av_path)})')})
        continue
      audio = (os.path.join(base, 'audio', q, sid + '.mp3') if bimodal
               else os.path.join(base, q, sid + '.mp3'))
      lyrics = (os.path.join(base, 'lyrics', q, a['Lyric_Song'].strip() + '.txt')
                if bimodal else None)
      if QUADRANTS[quadrant(valence, arousal)] != q:
        mismatched.append(sid)
      songs.append(Song(song_id=sid, audio_path=audio, lyrics_path=lyrics,
                        valence=valence, arousal=arousal, split=name,
                        official_quadrant=QUADRANTS.index(q)))
  for sid in av.index:
    if sid not in split_of:
      skipped.append({'item_id': sid, 'split': '', 'reason': (
          f'in no split file: {sid} is in {os.path.basename(av_path)} but not in '
          f'tvt_{split}')})
  if mismatched:
    logging.warning('%d MERGE songs have a split-file quadrant that differs from their '
                    'valence/arousal values (kept; listed in prep_report): %s',
                    len(mismatched),
                    ', '.join(mismatched[:10]) + (' ...' if len(mismatched) > 10 else ''))
  return songs, skipped, files

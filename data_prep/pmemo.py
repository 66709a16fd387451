"""PMEmo2019 (Zhang et al. 2018), read exactly as released.

    <root>/PMEmo2019/   (or <root> itself)
      metadata.csv                           musicId,fileName,title,artist,...
      chorus/<musicId>.mp3                   chorus clips
      annotations/static_annotations.csv     musicId,Arousal(mean),Valence(mean)  (0..1)
      annotations/static_annotations_std.csv musicId,Arousal(std),Valence(std)
      lyrics/<musicId>.lrc                   timestamped lyrics (not every song has them)

Songs are the rows of the static annotations. Lyrics come from the `.lrc` files with
timestamps, tag lines and credit lines stripped (`data_prep.lyrics`). PMEmo has no
official split: a seeded split stratified by quadrant is written once next to the
prepared data (`data_prep.splits`). `read_songs(config)` is the 'pmemo' source of
`data_prep.prepare`; `read_release` takes the release folder and split file explicitly.
"""

from __future__ import annotations

import os

import ml_collections

from data_prep import tables
from data_prep.manifest import Song, quadrant
from data_prep.tables import DatasetNotFoundError, ManifestError

DOWNLOAD = ('PMEmo2019 is distributed by its authors (github HuiZhangDB/PMEmo); unzip '
            'it and pass the folder holding PMEmo2019/ as --config.data.root')
ANNOTATIONS = os.path.join('annotations', 'static_annotations.csv')


def dataset_dir(root: str) -> str:
  root = os.path.abspath(os.path.expanduser(root or '.'))
  base = root if os.path.basename(root) == 'PMEmo2019' else os.path.join(root, 'PMEmo2019')
  if not os.path.isfile(os.path.join(base, ANNOTATIONS)):
    missing = base if not os.path.isdir(base) else os.path.join(base, ANNOTATIONS)
    raise DatasetNotFoundError(
        f'PMEmo2019 not found: looked for {os.path.join(base, ANNOTATIONS)} '
        f'(config.data.root = {root}); missing: {missing}. ' + DOWNLOAD)
  return base


def locate(config: ml_collections.ConfigDict) -> None:
  """Raises DatasetNotFoundError when the release is not under `config.data.root`."""
  dataset_dir(config.data.root)


def read_songs(config: ml_collections.ConfigDict
               ) -> tuple[list[Song], list[dict], list[str]]:
  """The 'pmemo' source: `read_release` of `config.data.root` with the split seeded by
  `config.data.split_seed` (stored under `config.data.data_dir`) and
  `config.data.lyrics`."""
  from data_prep import splits
  return read_release(config.data.root, splits.stored_split_path(config),
                      config.data.split_seed, lyrics=config.data.lyrics)


def read_release(root: str, split_path: str, seed: int = 0, lyrics: bool = True
                 ) -> tuple[list[Song], list[dict], list[str]]:
  """Every labelled PMEmo2019 song under `root` (the folder holding `PMEmo2019/` or that
  folder itself), with the split stored at `split_path` (made with `seed` on first use).

  Returns:
    (songs in annotation order, skipped rows, the index files read: annotations, split
    file, then the std annotations where present). Labels missing/NaN/outside 0..1 are
    skipped; with `lyrics`, songs without an .lrc file are skipped (and listed).
  """
  from data_prep import splits
  base = dataset_dir(root)
  ann_path = os.path.join(base, ANNOTATIONS)
  ann = tables.read_csv(ann_path, ['musicId', 'Arousal(mean)', 'Valence(mean)'],
                        encoding='utf-8-sig')  # A leading BOM would stick to 'musicId'.
  std_path = os.path.join(base, 'annotations', 'static_annotations_std.csv')
  std = {}
  if os.path.isfile(std_path):
    s = tables.read_csv(std_path, ['musicId', 'Arousal(std)', 'Valence(std)'],
                        encoding='utf-8-sig')
    std = {r['musicId'].strip(): (tables.number(r['Valence(std)']),
                                  tables.number(r['Arousal(std)']))
           for r in s.to_dict('records')}
  rows, skipped, seen = [], [], {}
  for i, r in enumerate(ann.to_dict('records')):
    sid = r['musicId'].strip()
    if sid in seen:
      raise ManifestError(f'{ann_path} row {i + 2}: musicId {sid!r} already on row {seen[sid]}')
    seen[sid] = i + 2
    v, a = tables.number(r['Valence(mean)']), tables.number(r['Arousal(mean)'])
    if not (0 <= v <= 1 and 0 <= a <= 1):  # NaN fails too.
      skipped.append({'item_id': sid, 'split': '',
                      'reason': f'label missing or outside 0..1: valence '
                                f'{r["Valence(mean)"]!r}, arousal {r["Arousal(mean)"]!r} '
                                f'({ann_path} row {i + 2})'})
      continue
    lrc = os.path.join(base, 'lyrics', sid + '.lrc')
    rows.append((sid, v, a, lrc if os.path.isfile(lrc) else None))
  ids = [r[0] for r in rows]
  split = splits.load_or_create(split_path, ids, [quadrant(v, a) for _, v, a, _ in rows],
                                seed)
  songs = []
  for sid, v, a, lrc in rows:
    if lyrics and lrc is None:
      skipped.append({'item_id': sid, 'split': split[sid],
                      'reason': f'no lyrics: {os.path.join(base, "lyrics", sid + ".lrc")} '
                                'does not exist'})
      continue
    vs, as_ = std.get(sid, (float('nan'), float('nan')))
    songs.append(Song(song_id=sid, audio_path=os.path.join(base, 'chorus', sid + '.mp3'),
                      lyrics_path=lrc, valence=v, arousal=a, split=split[sid],
                      valence_std=vs, arousal_std=as_))
  return songs, skipped, [ann_path, split_path] + ([std_path] if std else [])

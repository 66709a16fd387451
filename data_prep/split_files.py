"""Published split files (`config.data.split_file`): the field's own train/validation/
test lists replace the release's or the seeded split, for any source.

Two formats:
  - a folder with `train.txt`, `validation.txt`, `test.txt`, one song id a line (blank
    lines ignored): the layout Music2Emo publishes for PMEmo, DEAM and EmoMusic under
    `dataset/<name>/meta/split/` in its repository;
  - a CSV with the columns `song_id,split` (split one of train, validation, test).

Ids the release does not have, ids listed twice, or in two splits, are an error naming
them (`tables.ManifestError`). Release songs in no list are left out of the prepared
data and listed in prep_report.csv as skipped with the reason 'unused: ...'.
"""

from __future__ import annotations

import dataclasses
import os

from data_prep import tables
from data_prep.manifest import SPLITS

TXT_FILES = tuple(f'{s}.txt' for s in SPLITS)


def _names(ids: list[str], most: int = 10) -> str:
  shown = ', '.join(ids[:most])
  return shown + (f' and {len(ids) - most} more' if len(ids) > most else '')


def read_split_file(path: str) -> tuple[dict[str, str], list[str]]:
  """({song id: split}, the files read) of a split folder or CSV.

  Raises:
    tables.DatasetNotFoundError: the path, or a file of the folder, is missing.
    tables.ManifestError: a bad split name, an id listed twice or in two splits.
  """
  path = os.path.expanduser(path)
  entries: list[tuple[str, str, str]] = []  # (id, split, where).
  if os.path.isdir(path):
    files = [os.path.join(path, f) for f in TXT_FILES]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
      raise tables.DatasetNotFoundError(
          f'{path}: a split folder needs {", ".join(TXT_FILES)}; missing: '
          + ', '.join(os.path.basename(f) for f in missing))
    for split, f in zip(SPLITS, files):
      with open(f, encoding='utf-8') as fh:
        entries += [(line.strip(), split, f'{f}:{n}') for n, line in enumerate(fh, 1)
                    if line.strip()]
  elif os.path.isfile(path):
    files = [path]
    df = tables.read_csv(path, ['song_id', 'split'])
    for n, (i, s) in enumerate(zip(df.song_id.str.strip(), df.split.str.strip()), 2):
      if s not in SPLITS:
        raise tables.ManifestError(f'{path}: row {n}: split must be one of {SPLITS}, '
                                   f'got {s!r}')
      entries.append((i, s, f'{path}:{n}'))
  else:
    raise tables.DatasetNotFoundError(f'{path}: config.data.split_file is neither a '
                                      'folder of train/validation/test.txt nor a CSV')
  split: dict[str, str] = {}
  twice, across = [], []
  for i, s, _ in entries:
    if i in split:
      (twice if split[i] == s else across).append(i)
    split.setdefault(i, s)
  if twice or across:
    raise tables.ManifestError(
        f'{path}: ' + '; '.join(p for p in (
            f'listed twice: {_names(sorted(set(twice)))}' if twice else '',
            f'in two splits: {_names(sorted(set(across)))}' if across else '') if p))
  return split, files


def apply(songs: list, path: str) -> tuple[list, list[dict], list[str]]:
  """The release's songs with the split file's splits: (songs listed, report rows of
  the songs in no list, the files read).

  Raises:
    tables.ManifestError naming the ids the release does not have.
  """
  split, files = read_split_file(path)
  have = {s.song_id for s in songs}
  unknown = sorted(set(split) - have)
  if unknown:
    raise tables.ManifestError(
        f'{path}: {len(unknown)} id(s) are not songs of the release: {_names(unknown)}')
  kept = [dataclasses.replace(s, split=split[s.song_id]) for s in songs
          if s.song_id in split]
  # Their split column: the one the release (or the seeded split) gave them.
  unused = [{'item_id': s.song_id, 'split': s.split, 'status': 'skipped',
             'reason': f'unused: in no list of the split file {path}', 'note': ''}
            for s in songs if s.song_id not in split]
  return kept, unused, files

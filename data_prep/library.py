"""A folder of audio files (a user's own library, nested folders included) -> a manifest
CSV without labels, for pretraining an audio tower on it (job 'pretrain').

    python -m data_prep.library --audio_dir=~/Music --out=~/Music/manifest.csv \\
        [--lyrics_dir=~/Lyrics]

Rows: song_id (the file's path under audio_dir, extension included: unique, and says
which file it is), audio_path (relative to the manifest's folder when under it),
lyrics_path (lyrics_dir/<same relative path, .txt or .lrc> when it exists). No labels
and no split: with `config.data.labels = False` preparation cuts a seeded
train/validation split (`data_prep.manifest.read_songs`). Files of other types are
counted, not listed.
"""

from __future__ import annotations

import csv
import io
import os

from absl import app, flags

from data_prep.lyrics import LYRICS_EXTENSIONS
from mer_jax.audio_decode import AUDIO_EXTENSIONS


def library_rows(audio_dir: str, out: str, lyrics_dir: str = '') -> tuple[list[dict], int]:
  """(manifest rows of every audio file under `audio_dir`, sorted; other files seen).

  Raises:
    ValueError naming the folder when it is missing or holds no audio file.
  """
  audio_dir = os.path.abspath(os.path.expanduser(audio_dir))
  if not os.path.isdir(audio_dir):
    raise ValueError(f'{audio_dir}: audio folder not found')
  if lyrics_dir and not os.path.isdir(os.path.expanduser(lyrics_dir)):
    raise ValueError(f'{lyrics_dir}: lyrics folder not found')
  base = os.path.dirname(os.path.abspath(os.path.expanduser(out)))
  rows, others = [], 0
  for folder, dirs, files in os.walk(audio_dir):
    dirs.sort()
    for name in sorted(files):
      path = os.path.join(folder, name)
      if os.path.splitext(name)[1].lower() not in AUDIO_EXTENSIONS:
        others += 1
        continue
      rel = os.path.relpath(path, audio_dir)
      lyrics = ''
      for ext in LYRICS_EXTENSIONS if lyrics_dir else ():
        candidate = os.path.join(os.path.expanduser(lyrics_dir),
                                 os.path.splitext(rel)[0] + ext)
        if os.path.isfile(candidate):
          lyrics = candidate
          break
      rows.append({'song_id': rel.replace(os.sep, '/'),
                   'audio_path': _relative(path, base),
                   'lyrics_path': _relative(lyrics, base) if lyrics else ''})
  if not rows:
    raise ValueError(f'{audio_dir}: no audio file ({", ".join(AUDIO_EXTENSIONS)}) found')
  return rows, others


def _relative(path: str, base: str) -> str:
  path = os.path.abspath(path)
  return os.path.relpath(path, base) if path.startswith(base + os.sep) else path


def write_manifest(rows: list[dict], out: str) -> None:
  """Writes the CSV whole or not at all (a temporary file renamed)."""
  out = os.path.abspath(os.path.expanduser(out))
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=['song_id', 'audio_path', 'lyrics_path'])
  writer.writeheader()
  writer.writerows(rows)
  os.makedirs(os.path.dirname(out), exist_ok=True)
  tmp = out + '.tmp'
  with open(tmp, 'w', newline='', encoding='utf-8') as f:
    f.write(buf.getvalue())
  os.replace(tmp, out)


flags.DEFINE_string('audio_dir', None, 'The library: a folder of audio files (nested).')
flags.DEFINE_string('out', None, 'The manifest CSV to write.')
flags.DEFINE_string('lyrics_dir', '', 'Lyrics files mirroring audio_dir (optional).')


def main(argv):
  del argv
  from mer_jax import logs
  with logs.user_errors():
    rows, others = library_rows(flags.FLAGS.audio_dir, flags.FLAGS.out,
                                flags.FLAGS.lyrics_dir)
    write_manifest(rows, flags.FLAGS.out)
  with_lyrics = sum(bool(r['lyrics_path']) for r in rows)
  print(f'{flags.FLAGS.out}: {len(rows)} songs ({with_lyrics} with lyrics); '
        f'{others} other files left out')


if __name__ == '__main__':
  flags.mark_flags_as_required(['audio_dir', 'out'])
  app.run(main)

"""Many songs: inputs from a folder or a manifest, predictions and errors as CSV files
that survive a kill and resume.

    from mer_jax import predict, predict_batch
    predictor = predict.Predictor.from_workdir('runs/demo')
    items = predict_batch.items_from_dirs('mp3/', 'txt/')
    predict_batch.predict_many(predictor, items, 'predictions.csv')

The command line (`python -m mer_jax.predict --audio_dir=... --out=...`) calls the same
functions. Each row of the predictions CSV carries the checkpoint step and the hashes of
the parameters and config, so rows of another model are refused, not mixed.
"""

from __future__ import annotations

import dataclasses
import os

from data_prep.lyrics import LYRICS_EXTENSIONS  # noqa: F401  (re-exported)
from mer_jax import audio_features
from mer_jax import predictor as predictor_lib
from mer_jax.audio_decode import AUDIO_EXTENSIONS  # noqa: F401  (re-exported)
PREDICTION_COLUMNS = ('song_id', 'audio_path', 'lyrics_path', 'valence', 'arousal',
                      'quadrant', 'congruence', 'windows', 'lyrics', 'checkpoint_step',
                      'params_sha256', 'config_sha256')
ERROR_COLUMNS = ('song_id', 'audio_path', 'lyrics_path', 'reason')


def prediction_columns(predictor: predictor_lib.Predictor) -> tuple[str, ...]:
  """PREDICTION_COLUMNS, with a gaussian head's outputs (std, 90 % interval, spread
  across windows: `tasks.fusion_gaussian.SONG_UNCERTAINTY`) after the arousal."""
  extra = tuple(k for k in predictor.task.song_outputs if k not in PREDICTION_COLUMNS)
  i = PREDICTION_COLUMNS.index('arousal') + 1
  return PREDICTION_COLUMNS[:i] + extra + PREDICTION_COLUMNS[i:]


def errors_path(out_csv: str) -> str:
  """Where `predict_many` writes the errors of `out_csv` by default."""
  return os.path.splitext(out_csv)[0] + '_errors.csv'


@dataclasses.dataclass(frozen=True)
class Item:
  """One song to predict; lyrics_path '' = none."""
  song_id: str
  audio_path: str
  lyrics_path: str = ''


def items_from_dirs(audio_dir: str, lyrics_dir: str = '') -> list[Item]:
  """Audio files of `audio_dir` (sorted), each with `lyrics_dir/<stem>.txt` or `.lrc`
  when it exists."""
  if not os.path.isdir(audio_dir):
    raise FileNotFoundError(f'{audio_dir}: audio folder not found')
  if lyrics_dir and not os.path.isdir(lyrics_dir):
    raise FileNotFoundError(f'{lyrics_dir}: lyrics folder not found')
  items = []
  for name in sorted(os.listdir(audio_dir)):
    stem, ext = os.path.splitext(name)
    if ext.lower() not in AUDIO_EXTENSIONS:
      continue
    lyrics = ''
    for e in LYRICS_EXTENSIONS:
      candidate = os.path.join(lyrics_dir, stem + e) if lyrics_dir else ''
      if candidate and os.path.isfile(candidate):
        lyrics = candidate
        break
    items.append(Item(stem, os.path.join(audio_dir, name), lyrics))
  return items


def items_from_manifest(path: str) -> list[Item]:
  """Songs of a manifest CSV (song_id, audio_path[, lyrics_path]; labels optional)."""
  from data_prep import manifest
  return [Item(s.song_id, s.audio_path, s.lyrics_path or '')
          for s in manifest.read_manifest(path, require_labels=False)]


class CsvLog:
  """An append-only CSV that survives being killed: every row is one flushed, fsynced
  write; a torn last line (a kill mid-write) is cut off when the file is reopened."""

  def __init__(self, path: str, columns: tuple[str, ...]):
    import pandas as pd
    self.path, self.columns = path, columns
    self.rows = pd.DataFrame(columns=list(columns))
    data = b''
    if os.path.isfile(path):
      with open(path, 'rb') as f:
        data = f.read()
    header = (','.join(columns) + '\n').encode()
    complete = data[:data.rfind(b'\n') + 1]  # b'' if even the header was torn.
    # Checked before anything is cut: another file is refused untouched.
    if not (complete.startswith(header) if complete else header.startswith(data)):
      first = data.split(b'\n', 1)[0].decode(errors='replace')[:200]
      raise ValueError(f'{path}: not a file this command wrote (first line {first!r})')
    if len(complete) < len(data):
      with open(path, 'rb+') as f:
        f.truncate(len(complete))
    if complete:
      self.rows = pd.read_csv(path, dtype={'song_id': str}, keep_default_na=False)
    else:
      os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
      self._write(header.decode())  # New, empty, or its torn header cut off above.

  def _write(self, line: str) -> None:
    with open(self.path, 'a', encoding='utf-8') as f:
      f.write(line)
      f.flush()
      os.fsync(f.fileno())

  def append(self, row: dict) -> None:
    import csv
    import io
    buf = io.StringIO()
    csv.writer(buf, lineterminator='\n').writerow([row.get(c, '') for c in self.columns])
    self._write(buf.getvalue())


def predict_many(predictor: predictor_lib.Predictor, items: list[Item], out_csv: str,
                 errors_csv: str | None = None, hop_s: float | None = 15.0,
                 audio_only_fallback: bool = False,
                 congruence: predictor_lib.Predictor | None = None) -> dict[str, int]:
  """Predicts every item into `out_csv`, one row per song, and every song that fails
  into `errors_csv` (default: <out>_errors.csv) with the reason. Songs already in
  either file are skipped (re-running resumes); rows of another model are refused.

  Returns:
    {'done': rows written now, 'failed': errors written now, 'skipped': already there}.
  """
  from tqdm import tqdm
  errors_csv = errors_csv or errors_path(out_csv)
  columns = prediction_columns(predictor)
  out = CsvLog(out_csv, columns)
  errs = CsvLog(errors_csv, ERROR_COLUMNS)
  stamp = {'checkpoint_step': predictor.step, 'params_sha256': predictor.params_sha256,
           'config_sha256': predictor.config_sha256}
  if len(out.rows):
    mine = ((out.rows.params_sha256 == stamp['params_sha256'])
            & (out.rows.config_sha256 == stamp['config_sha256']))
    if not mine.all():
      raise ValueError(f'{out_csv} holds predictions of another model or checkpoint '
                       f'(params {sorted(set(out.rows.params_sha256))}); write to a new '
                       'file')
  done = set(out.rows.song_id) | set(errs.rows.song_id)
  ids = [i.song_id for i in items]
  if len(set(ids)) != len(ids):
    dup = sorted({i for i in ids if ids.count(i) > 1})
    raise ValueError(f'duplicate song ids among the inputs: {dup[:5]}')
  todo = [i for i in items if i.song_id not in done]
  counts = {'done': 0, 'failed': 0, 'skipped': len(items) - len(todo)}
  for item in tqdm(todo, desc='predict', unit='song'):
    base = {'song_id': item.song_id, 'audio_path': item.audio_path,
            'lyrics_path': item.lyrics_path}
    try:
      audio_features.check_file(item.audio_path)
      res = predictor_lib.predict_song(
          predictor, item.audio_path, lyrics_path=item.lyrics_path, hop_s=hop_s,
          audio_only_fallback=audio_only_fallback, congruence=congruence)
    except (audio_features.AudioError, predictor_lib.LyricsMissingError) as e:
      audio = isinstance(e, audio_features.AudioError)  # Its kind first, as prep reports.
      errs.append({**base, 'reason': f'{e.kind}: {e}' if audio else str(e)})
      counts['failed'] += 1
      continue
    out.append({**base, **{k: res[k] for k in columns if k in res}, **stamp})
    counts['done'] += 1
  return counts

"""Predict new songs from a training workdir: `python -m mer_jax.predict` (the command
line; the library is `mer_jax.predictor`, whose names this module re-exports so that
`predict.Predictor`, `predict.predict_song`, ... work as before).

    python -m mer_jax.predict --workdir=runs/demo --audio=song.mp3 --lyrics=song.txt
    python -m mer_jax.predict --workdir=runs/demo --audio_dir=mp3/ --out=preds.csv
    python -m mer_jax.predict --workdir=runs/mert --embedding=song.npy --lyrics=song.txt
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

if __name__ == '__main__':  # The command, before transformers is imported (below).
  # Neither TensorFlow nor PyTorch is used to predict; transformers imports both when
  # they are installed: 4 of a start-up's seconds.
  os.environ.setdefault('USE_TF', '0')
  os.environ.setdefault('USE_TORCH', '0')

from mer_jax.predictor import (QUADRANT_MEANING, QUADRANTS, SCALE, LyricsMissingError,
                               Predictor, has_text, predict_prepared, predict_song,
                               quadrant)
from mer_jax.windows import sliding_windows, window_starts

__all__ = ['QUADRANT_MEANING', 'QUADRANTS', 'SCALE', 'LyricsMissingError', 'Predictor',
           'has_text', 'predict_prepared', 'predict_song', 'quadrant', 'sliding_windows',
           'window_starts', 'main', 'run']


def main(argv: list[str]) -> None:
  from absl import flags
  if len(argv) > 1:
    raise SystemExit(f'unexpected arguments: {argv[1:]}')
  run(flags.FLAGS)


def run(f: Any) -> None:
  """The command: `f` holds the flags' values (absl's FLAGS, or any object with the
  same attributes: tests drive the command in-process so). A problem with the user's
  files is one line on stderr and exit status 1 (SystemExit)."""
  from mer_jax import caches, logs
  logs.quiet_library_logs()
  caches.enable_compilation_cache()  # The next call loads what this one compiles.
  hop = None if f.hop_s <= 0 else f.hop_s
  with logs.user_errors():
    one_song = bool(f.audio or f.embedding)
    if not one_song:  # The inputs and outputs are checked before the model is loaded.
      from mer_jax import paths, predict_batch
      if f.audio_dir:
        items = predict_batch.items_from_dirs(f.audio_dir, f.lyrics_dir)
      elif f.manifest:
        items = predict_batch.items_from_manifest(f.manifest)
      else:
        raise SystemExit('error: give --audio, --audio_dir or --manifest')
      if not f.out:
        raise SystemExit('error: --out (the predictions CSV) is needed for many songs')
      errors = f.errors or predict_batch.errors_path(f.out)
      paths.writable_file(f.out, '--out')
      paths.writable_file(errors, '--errors')
    elif f.lyrics and f.lyrics_text is not None:
      raise SystemExit('error: give --lyrics (a file) or --lyrics_text, not both')
    predictor = Predictor.from_workdir(f.workdir, f.batch_size)
    congruence = (Predictor.from_workdir(f.congruence_workdir, f.batch_size)
                  if f.congruence_workdir else None)
    if congruence is not None and 'congruence' not in congruence.task.song_outputs:
      raise ValueError(f'--congruence_workdir={f.congruence_workdir} is not a Siamese run')
    if one_song:
      res = predict_song(predictor, f.audio or None, lyrics_path=f.lyrics,
                         lyrics_text=f.lyrics_text, hop_s=hop, per_window=f.per_window,
                         audio_only_fallback=f.audio_only_fallback, congruence=congruence,
                         embedding=f.embedding or None)
      res.update({'audio': f.audio or f.embedding, 'scale': SCALE, 'workdir': f.workdir,
                  'checkpoint_step': predictor.step})
      # allow_nan=False: the output is always valid JSON (predict never returns NaN).
      print(json.dumps(res, indent=2, allow_nan=False) if f.json
            else _describe(res, predictor))
      return
    counts = predict_batch.predict_many(predictor, items, f.out, errors, hop,
                                        f.audio_only_fallback, congruence)
    print(f'{counts["done"]} predicted, {counts["failed"]} failed (see {errors}), '
          f'{counts["skipped"]} already done; {SCALE}. Predictions: {f.out}')


def _describe(res: dict, predictor: Predictor) -> str:
  lines = [res['audio']]
  if 'valence' in res:
    for d in ('valence', 'arousal'):
      line = f'  {d:8s} {res[d]:.3f}'
      if f'{d}_std' in res:  # A gaussian head: sigma and the 90 % interval.
        line += (f' ± {res[f"{d}_std"]:.3f}  (90% interval {res[f"{d}_low90"]:.3f} .. '
                 f'{res[f"{d}_high90"]:.3f})')
      if f'{d}_window_spread' in res:
        line += f'; spread across windows {res[f"{d}_window_spread"]:.3f}'
      lines.append(line)
    lines += [f'  quadrant {res["quadrant"]} {QUADRANT_MEANING[res["quadrant"]]}',
              f'  ({SCALE}' + ('; ± is the model\'s predicted std (sigma), the spread '
                               'across windows is apart from it)' if 'valence_std' in res
                               else ')')]
  if 'congruence' in res:
    lines.append(f'  congruence {res["congruence"]:.3f} (cosine of the audio and lyrics '
                 'embeddings, -1..1; higher = they agree)')
  lines.append(f'  {res["windows"]} window(s), lyrics: {res["lyrics"]}; model '
               f'{predictor.workdir} (step {predictor.step})')
  for i, w in enumerate(res.get('per_window', [])):
    lines.append(f'    window {i} @ {res["window_starts_s"][i]:.2f} s: ' + ', '.join(
        f'{k} {v:.3f}' for k, v in w.items()))
  return '\n'.join(lines)


def _define_flags(flag_values: Any = None) -> None:
  """The command's flags, into absl's FLAGS (or `flag_values`, a FlagValues)."""
  from absl import flags
  fv = {'flag_values': flags.FLAGS if flag_values is None else flag_values}
  string = functools.partial(flags.DEFINE_string, **fv)
  boolean = functools.partial(flags.DEFINE_bool, **fv)
  string('workdir', None, 'Training run (fusion, or Siamese for congruence).')
  string('audio', '', 'One song: its audio file.')
  string('embedding', '', 'One song: its precomputed embedding (.npy), for a model of '
         'the embeddings front-end.')
  string('lyrics', '', 'One song: its lyrics file (.txt or .lrc).')
  string('lyrics_text', None, 'One song: its lyrics as text.')
  boolean('json', False, 'One song: print JSON.')
  boolean('per_window', False, 'One song: also every window\'s outputs.')
  string('audio_dir', '', 'Many songs: folder of audio files.')
  string('lyrics_dir', '', 'Many songs: lyrics files named like the audio.')
  string('manifest', '', 'Many songs: CSV with song_id,audio_path[,lyrics_path].')
  string('out', '', 'Many songs: predictions CSV (resumed if it exists).')
  string('errors', '', 'Many songs: errors CSV (default <out>_errors.csv).')
  flags.DEFINE_float('hop_s', 15.0, 'Seconds between windows of long songs; 0 = the '
                     'single window training used.', **fv)
  flags.DEFINE_integer('batch_size', 8, 'Windows per model call.', **fv)
  boolean('audio_only_fallback', False, 'Songs without lyrics: predict with the lyrics '
          'features zeroed (models trained with lyrics dropout).')
  string('congruence_workdir', '', 'A Siamese run: add congruence.')
  flags.mark_flag_as_required('workdir', **fv)


if __name__ == '__main__':
  os.environ.setdefault('HF_HUB_OFFLINE', '1')
  from absl import app
  from mer_jax import logs
  _define_flags()
  app.run(main, flags_parser=logs.parse_flags)

"""Predict valence and arousal (0..1) of new songs from a training workdir.

One song (prints the result; `--json` for machine output):

    python -m mer_jax.predict --workdir=runs/demo --audio=song.mp3 --lyrics=song.txt
    python -m mer_jax.predict --workdir=runs/demo --audio=song.flac --lyrics_text="..."

Many songs (a predictions CSV and an errors CSV; re-running resumes; the machinery is
`mer_jax.predict_batch`):

    python -m mer_jax.predict --workdir=runs/demo --audio_dir=mp3/ --lyrics_dir=txt/ \\
        --out=predictions.csv
    python -m mer_jax.predict --workdir=runs/demo --manifest=songs.csv --out=predictions.csv

Everything the features depend on comes from the workdir: the mel parameters and the
dB reference (max power) of the training data, the tokenizer, its max length and the
text encoder (refused if its files changed). Songs longer than the model's window are
cut into windows `--hop_s` apart whose outputs are averaged; the waveform is decoded
once and windows are featurised `--batch_size` at a time, so memory stays that of one
batch of windows plus the decoded audio. `--congruence_workdir` (a Siamese run) adds
each song's audio-lyrics congruence (cosine, -1..1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Iterable, Iterator

import jax
import ml_collections
import numpy as np

from mer_jax import audio_features, bert, checkpointing, models, tokenization

SCALE = 'valence and arousal on a 0..1 scale (0.5 = neutral; quadrants split at 0.5)'
QUADRANTS = ('Q1', 'Q2', 'Q3', 'Q4')
QUADRANT_MEANING = {'Q1': 'happy/excited (V+ A+)', 'Q2': 'angry/tense (V- A+)',
                    'Q3': 'sad/depressed (V- A-)', 'Q4': 'calm/relaxed (V+ A-)'}


class LyricsMissingError(ValueError):
  """A model that reads lyrics got none, and no audio-only fallback was asked for."""


def has_text(lyrics: str | None) -> bool:
  """Whether lyrics were given: None and blank text are none."""
  return lyrics is not None and lyrics.strip() != ''


def quadrant(valence: float, arousal: float) -> str:
  """Russell quadrant of a (valence, arousal) point, thresholds at 0.5."""
  from data_prep.manifest import quadrant as q
  return QUADRANTS[q(valence, arousal)]


def window_starts(num_samples: int, window: int, hop: int) -> list[int]:
  """Sample offsets of the analysis windows: every `hop` samples while a whole window
  fits, plus a last window ending at the end of the song; one window at 0 when the
  song is no longer than a window."""
  if num_samples <= window:
    return [0]
  starts = list(range(0, num_samples - window + 1, hop))
  if starts[-1] + window < num_samples:
    starts.append(num_samples - window)
  return starts


def sliding_windows(chunks: Iterable[np.ndarray], window: int, hop: int
                    ) -> Iterator[tuple[int, np.ndarray]]:
  """The windows of `window_starts` over a waveform that arrives in chunks: yields
  (start, samples) while holding at most a window plus a chunk in memory."""
  buf = np.zeros(0, np.float32)
  offset = 0  # Sample index of buf[0].
  next_start = 0
  total = 0
  emitted_last_end = 0
  for chunk in chunks:
    buf = np.concatenate([buf, chunk])
    total += chunk.size
    while next_start + window <= total:
      yield next_start, buf[next_start - offset:next_start - offset + window]
      emitted_last_end = next_start + window
      next_start += hop
    keep_from = max(min(next_start, total - window), 0)  # The last window may end here.
    if keep_from > offset:
      buf = buf[keep_from - offset:]
      offset = keep_from
  if not emitted_last_end:  # Shorter than a window: the whole song.
    if total:
      yield 0, buf[:total]
  elif emitted_last_end < total:
    yield total - window, buf[total - window - offset:]


def _hash_tree(tree: Any) -> str:
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    h.update(jax.tree_util.keystr(path).encode())
    h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
  return h.hexdigest()[:16]


@dataclasses.dataclass
class Predictor:
  """A trained model and everything its features need, read from one workdir.

  `predict(audio_path, lyrics)` -> {'valence', 'arousal' (0..1), 'quadrant', ...}.
  """
  workdir: str
  config: ml_collections.ConfigDict
  variables: dict
  model: Any
  mel_params: audio_features.MelParams
  max_power: float
  step: int
  params_sha256: str
  config_sha256: str
  tokenizer: Any = None
  text_tower: Any = None  # Frozen tower: (TextTower, bert params) to embed lyrics.
  congruence_model: 'Predictor | None' = None  # Gated fusion: its Siamese run.
  batch_size: int = 8
  # Compiled once per Predictor: the model and the frozen text tower.
  _jitted: Any = dataclasses.field(default=None, init=False, repr=False)
  _embed: Any = dataclasses.field(default=None, init=False, repr=False)

  @classmethod
  def from_workdir(cls, workdir: str, batch_size: int = 8) -> 'Predictor':
    """Loads the best checkpoint of a finished (or interrupted) training run."""
    config, pre = checkpointing.read_run_config(workdir)
    step, state = checkpointing.restore_best(workdir)
    variables = {'params': state['params'], 'batch_stats': state.get('batch_stats', {})}
    keys = models.input_keys(config)
    bert_config = tokenizer = text_tower = None
    if {'lyrics_emb', 'token_ids'} & set(keys):
      now = tokenization.encoder_identity(config.text.encoder)
      if now != pre['encoder_identity']:
        raise ValueError(
            f'the text encoder {config.text.encoder!r} differs from the one {workdir} '
            f'was trained with ({pre["encoder_identity"]} vs {now})')
      tokenizer = tokenization.load_tokenizer(config.text.encoder)
      bert_config, bert_params = bert.load_bert(config.text.encoder)
      if 'lyrics_emb' in keys:
        text_tower = (bert.TextTower(bert_config, pooling=config.text.pooling),
                      bert_params)
    model = models.create_model(config, bert_config)
    congruence_model = None
    if 'congruence' in keys:
      congruence_model = cls.from_workdir(config.model.congruence_workdir, batch_size)
    flat = json.dumps(config.to_dict(), sort_keys=True, default=str)
    return cls(workdir=workdir, config=config, variables=variables, model=model,
               mel_params=audio_features.MelParams(**pre['mel_params']),
               max_power=float(pre['max_power']), step=int(step),
               params_sha256=_hash_tree(variables),
               config_sha256=hashlib.sha256(flat.encode()).hexdigest()[:16],
               tokenizer=tokenizer, text_tower=text_tower,
               congruence_model=congruence_model, batch_size=batch_size)

  @property
  def task(self) -> str:
    return self.config.task

  @property
  def reads_lyrics(self) -> bool:
    keys = models.input_keys(self.config)
    return 'lyrics_emb' in keys or 'token_ids' in keys

  @property
  def can_drop_lyrics(self) -> bool:
    """Whether the fusion model was trained with whole-lyrics dropout, so that it has
    learned to predict from the audio with the lyrics features zeroed."""
    return (self.task == 'fusion' and self.config.model.modality == 'bimodal'
            and self.config.model.modality_dropout > 0)

  def lyrics_inputs(self, text: str) -> dict[str, np.ndarray]:
    """The lyrics inputs of one song: {'lyrics_emb': [1, dim]} for a frozen tower,
    {'token_ids', 'attention_mask': [1, max_length]} for a fine-tuned one."""
    ids, mask = tokenization.tokenize([text], self.tokenizer, self.config.text.max_length)
    if self.text_tower is not None:
      if self._embed is None:
        tower, params = self.text_tower
        self._embed = jax.jit(lambda i, m: tower.apply({'params': {'bert': params}}, i, m))
      return {'lyrics_emb': np.asarray(self._embed(ids, mask))}
    return {'token_ids': ids, 'attention_mask': mask}

  def hop_samples(self, hop_s: float) -> int:
    """`hop_s` seconds in samples, rounded to whole STFT hops (at least one)."""
    p = self.mel_params
    return max(1, int(round(hop_s * p.sample_rate / p.hop_length))) * p.hop_length

  def segments(self, audio_path: str, hop_s: float | None
               ) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, waveform) of each analysis window of a file.

    hop_s None: the one window training used (`crop` of the whole decoded song);
    otherwise windows `hop_s` apart over the whole song, decoded as a stream.
    """
    p = self.mel_params
    if hop_s is None:
      yield 0, audio_features.crop(audio_features.load_audio(audio_path, p), p)
      return
    yield from sliding_windows(audio_features.stream_audio(audio_path, p),
                               audio_features.window_samples(p), self.hop_samples(hop_s))

  def mel_batches(self, segments: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Log-mels of waveform windows, `batch_size` at a time: [b, n_mels, frames], dB
    against the training data's max power, -80 dB padded."""
    p = self.mel_params
    batch = []
    for seg in segments:
      batch.append(audio_features.power_to_db(audio_features.mel_power(seg, p),
                                              self.max_power, p.num_frames))
      if len(batch) == self.batch_size:
        yield np.stack(batch)
        batch = []
    if batch:
      yield np.stack(batch)

  def _apply(self, inputs: dict, drop_lyrics: bool = False):
    fn = self._jitted
    if fn is None:
      fn = jax.jit(lambda v, x, drop: self.model.apply(v, x, **(
          {'drop_lyrics': drop} if self.task == 'fusion' else {})),
          static_argnums=2)
      self._jitted = fn
    n = next(iter(inputs.values())).shape[0]
    pad = self.batch_size - n  # One compiled shape for every batch.
    if pad > 0:
      inputs = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)])
                for k, v in inputs.items()}
    out = fn(self.variables, inputs, drop_lyrics)
    return jax.tree.map(lambda a: np.asarray(a)[:n] if np.ndim(a) else np.asarray(a), out)

  def predict(self, audio_path: str, lyrics: str | None = None,
              hop_s: float | None = 15.0, per_window: bool = False,
              audio_only_fallback: bool = False) -> dict:
    """Predicts one song.

    Args:
      audio_path: any format librosa reads, any sample rate, mono or stereo.
      lyrics: the lyrics text (None or blank: no lyrics).
      hop_s: seconds between window starts for songs longer than the window; None:
        the one window training used (`crop`).
      per_window: also return every window's outputs.
      audio_only_fallback: for a bimodal model without lyrics, predict with the lyrics
        features zeroed (as in its whole-lyrics dropout) instead of raising.
    Returns:
      {'valence', 'arousal' (0..1, window mean), 'quadrant', 'windows', 'lyrics'
      ('text', 'none', 'audio-only fallback'), 'congruence' (Siamese run or gated
      model), 'window_starts_s' and 'per_window' when asked}.
    """
    has_lyrics = has_text(lyrics)
    drop = False
    if self.reads_lyrics and not has_lyrics:
      if self.task == 'fusion' and audio_only_fallback and self.can_drop_lyrics:
        drop = True
      elif self.task == 'fusion' and audio_only_fallback:
        raise LyricsMissingError(
            f'{audio_path}: no lyrics, and the model in {self.workdir} was not trained '
            'with lyrics dropout (config.model.modality_dropout = 0), so it has no '
            'audio-only mode; use an audio-only run (config.model.modality = audio)')
      else:
        raise LyricsMissingError(
            f'{audio_path}: no lyrics, and the model in {self.workdir} reads lyrics; '
            'give --lyrics/--lyrics_text' + (
                ' or ask for --audio_only_fallback' if self.can_drop_lyrics else ''))
    text_in = self.lyrics_inputs(lyrics) if self.reads_lyrics and not drop else {}
    if drop:  # Placeholders the model zeroes (drop_lyrics): shapes only.
      if self.text_tower is not None:
        dim = self.text_tower[0].bert_config.hidden_size
        text_in = {'lyrics_emb': np.zeros((1, dim), np.float32)}
      else:
        length = self.config.text.max_length
        text_in = {'token_ids': np.zeros((1, length), np.int32),
                   'attention_mask': np.zeros((1, length), np.int32)}
    extra = {}
    congruence = None
    if self.congruence_model is not None:
      if not has_lyrics:
        raise LyricsMissingError(f'{audio_path}: the congruence-gated model needs lyrics')
      congruence = self.congruence_model.predict(audio_path, lyrics, hop_s)['congruence']
      extra['congruence'] = np.float32(congruence)
    outs, starts = [], []

    def waveforms():
      for start, seg in self.segments(audio_path, hop_s):
        starts.append(start / self.mel_params.sample_rate)
        yield seg

    for mel in self.mel_batches(waveforms()):
      n = mel.shape[0]
      inputs = {'mel': mel.astype(np.float32)}
      for k, v in text_in.items():
        inputs[k] = np.repeat(v, n, axis=0)
      for k, v in extra.items():
        inputs[k] = np.full((n,), v, np.float32)
      outs.append(self._apply({k: inputs[k] for k in models.input_keys(self.config)},
                              drop))
    result: dict[str, Any] = {'windows': sum(
        (o['audio'] if self.task == 'siamese' else o).shape[0] for o in outs)}
    if self.task == 'siamese':
      cos = np.concatenate([np.sum(o['audio'] * o['lyrics'], axis=-1) for o in outs])
      result['congruence'] = float(cos.mean())
      if per_window:
        result['per_window'] = [{'congruence': float(c)} for c in cos]
    else:
      pred = np.concatenate(outs)
      v, a = (float(x) for x in pred.mean(axis=0))
      result.update({'valence': v, 'arousal': a, 'quadrant': quadrant(v, a)})
      if congruence is not None:
        result['congruence'] = float(congruence)
      if per_window:
        result['per_window'] = [{'valence': float(w[0]), 'arousal': float(w[1])}
                                for w in pred]
    result['lyrics'] = 'audio-only fallback' if drop else ('text' if has_lyrics else 'none')
    if per_window:
      result['window_starts_s'] = starts
    return result


def predict_song(predictor: Predictor, audio_path: str, *, lyrics_path: str = '',
                 lyrics_text: str | None = None, hop_s: float | None = 15.0,
                 per_window: bool = False, audio_only_fallback: bool = False,
                 congruence: Predictor | None = None) -> dict[str, Any]:
  """One song as the command line and `predict_batch` see it: the lyrics from a file
  (`lyrics_path`, .txt or .lrc) or as text, then `predictor.predict`, plus the song's
  congruence from a Siamese `congruence` predictor when given.

  Raises:
    LyricsMissingError: the lyrics file is missing, empty or not UTF-8, or a model
      that reads lyrics (or congruence) got none.
    audio_features.AudioError: the audio cannot be read.
  """
  text = lyrics_text
  if lyrics_path:
    from data_prep import lyrics as lyrics_lib
    text, reason = lyrics_lib.read_lyrics(lyrics_path, True)
    if reason:
      raise LyricsMissingError(reason)
  res = predictor.predict(audio_path, text, hop_s, per_window=per_window,
                          audio_only_fallback=audio_only_fallback)
  if congruence is not None:
    if not has_text(text):
      raise LyricsMissingError(f'{audio_path}: no lyrics, so no congruence')
    res['congruence'] = congruence.predict(audio_path, text, hop_s)['congruence']
  return res


def predict_prepared(predictor: Predictor, split: str = 'test'):
  """The model's outputs on a split of the prepared dataset it was trained on (the
  notebooks' entry point).

  Returns:
    A DataFrame, one row per song: song_id, quadrant (true), congruent and, for a
    fusion model, valence_true, valence_pred, arousal_true, arousal_pred (0..1); for a
    Siamese model congruence and the unit embeddings (audio, lyrics columns of arrays).
  """
  import pandas as pd
  from data_prep import prepare as prepare_lib
  from mer_jax import input_pipeline, report, siamese
  config = predictor.config
  builder = prepare_lib.prepare(config)
  keys = models.input_keys(config)
  lookups = input_pipeline.lookups(builder, config, keys)
  if split not in input_pipeline.split_names(builder):
    raise ValueError(f'{builder.data_dir} has no {split!r} split')
  parts: dict[str, list] = {}
  for batch in input_pipeline.eval_batches(
      input_pipeline.load_split(builder, split, lookups), predictor.batch_size):
    out = predictor._apply({k: batch[k] for k in keys})
    keep = batch['mask'] > 0
    if not isinstance(out, dict):
      out = {'preds': out}
    for k, v in out.items():
      if np.ndim(v):
        parts.setdefault(k, []).append(np.asarray(v)[keep])
    for k in ('song_id', 'targets', 'quadrant', 'congruent'):
      parts.setdefault(k, []).append(batch[k][keep])
  cols = {k: np.concatenate(v) for k, v in parts.items()}
  df = pd.DataFrame({'song_id': [s.decode() for s in cols['song_id']],
                     'quadrant': [report.QUADRANT_NAMES[q] for q in cols['quadrant']],
                     'congruent': cols['congruent']})
  if 'preds' in cols:
    for i, d in enumerate(('valence', 'arousal')):
      df[f'{d}_true'] = cols['targets'][:, i]
      df[f'{d}_pred'] = cols['preds'][:, i]
  else:
    df['congruence'] = siamese.congruence(cols)
    df['audio'] = list(cols['audio'])
    df['lyrics'] = list(cols['lyrics'])
  return df


def main(argv: list[str]) -> None:
  from absl import flags
  from mer_jax import logs
  logs.quiet_library_logs()
  f = flags.FLAGS
  if len(argv) > 1:
    raise SystemExit(f'unexpected arguments: {argv[1:]}')
  hop = None if f.hop_s <= 0 else f.hop_s
  with logs.user_errors():
    predictor = Predictor.from_workdir(f.workdir, f.batch_size)
    congruence = (Predictor.from_workdir(f.congruence_workdir, f.batch_size)
                  if f.congruence_workdir else None)
    if congruence is not None and congruence.task != 'siamese':
      raise ValueError(f'--congruence_workdir={f.congruence_workdir} is not a Siamese run')
    if f.audio:
      if f.lyrics and f.lyrics_text is not None:
        raise SystemExit('error: give --lyrics (a file) or --lyrics_text, not both')
      res = predict_song(predictor, f.audio, lyrics_path=f.lyrics,
                         lyrics_text=f.lyrics_text, hop_s=hop, per_window=f.per_window,
                         audio_only_fallback=f.audio_only_fallback, congruence=congruence)
      res.update({'audio': f.audio, 'scale': SCALE, 'workdir': f.workdir,
                  'checkpoint_step': predictor.step})
      print(json.dumps(res, indent=2) if f.json else _describe(res, predictor))
      return
    from mer_jax import predict_batch
    if f.audio_dir:
      items = predict_batch.items_from_dirs(f.audio_dir, f.lyrics_dir)
    elif f.manifest:
      items = predict_batch.items_from_manifest(f.manifest)
    else:
      raise SystemExit('error: give --audio, --audio_dir or --manifest')
    if not f.out:
      raise SystemExit('error: --out (the predictions CSV) is needed for many songs')
    counts = predict_batch.predict_many(predictor, items, f.out, f.errors or None, hop,
                                        f.audio_only_fallback, congruence)
    errors = f.errors or predict_batch.errors_path(f.out)
    print(f'{counts["done"]} predicted, {counts["failed"]} failed (see {errors}), '
          f'{counts["skipped"]} already done; {SCALE}. Predictions: {f.out}')


def _describe(res: dict, predictor: Predictor) -> str:
  lines = [res['audio']]
  if 'valence' in res:
    lines += [f'  valence  {res["valence"]:.3f}', f'  arousal  {res["arousal"]:.3f}',
              f'  quadrant {res["quadrant"]} {QUADRANT_MEANING[res["quadrant"]]}',
              f'  ({SCALE})']
  if 'congruence' in res:
    lines.append(f'  congruence {res["congruence"]:.3f} (cosine of the audio and lyrics '
                 'embeddings, -1..1; higher = they agree)')
  lines.append(f'  {res["windows"]} window(s), lyrics: {res["lyrics"]}; model '
               f'{predictor.workdir} (step {predictor.step})')
  for i, w in enumerate(res.get('per_window', [])):
    lines.append(f'    window {i} @ {res["window_starts_s"][i]:.2f} s: ' + ', '.join(
        f'{k} {v:.3f}' for k, v in w.items()))
  return '\n'.join(lines)


def _define_flags() -> None:
  from absl import flags
  flags.DEFINE_string('workdir', None, 'Training run (fusion, or Siamese for congruence).')
  flags.DEFINE_string('audio', '', 'One song: its audio file.')
  flags.DEFINE_string('lyrics', '', 'One song: its lyrics file (.txt or .lrc).')
  flags.DEFINE_string('lyrics_text', None, 'One song: its lyrics as text.')
  flags.DEFINE_bool('json', False, 'One song: print JSON.')
  flags.DEFINE_bool('per_window', False, 'One song: also every window\'s outputs.')
  flags.DEFINE_string('audio_dir', '', 'Many songs: folder of audio files.')
  flags.DEFINE_string('lyrics_dir', '', 'Many songs: lyrics files named like the audio.')
  flags.DEFINE_string('manifest', '', 'Many songs: CSV with song_id,audio_path[,lyrics_path].')
  flags.DEFINE_string('out', '', 'Many songs: predictions CSV (resumed if it exists).')
  flags.DEFINE_string('errors', '', 'Many songs: errors CSV (default <out>_errors.csv).')
  flags.DEFINE_float('hop_s', 15.0, 'Seconds between windows of long songs; 0 = the '
                     'single window training used.')
  flags.DEFINE_integer('batch_size', 8, 'Windows per model call.')
  flags.DEFINE_bool('audio_only_fallback', False, 'Songs without lyrics: predict with '
                    'the lyrics features zeroed (models trained with lyrics dropout).')
  flags.DEFINE_string('congruence_workdir', '', 'A Siamese run: add congruence.')
  flags.mark_flag_as_required('workdir')


if __name__ == '__main__':
  os.environ.setdefault('HF_HUB_OFFLINE', '1')
  from absl import app
  _define_flags()
  app.run(main)

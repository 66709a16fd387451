"""Predict valence and arousal (0..1) of new songs from a training workdir: the library
of `python -m mer_jax.predict` (`mer_jax.predict`, which re-exports these names).

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
from typing import Any, Iterable, Iterator

import jax
import ml_collections
import numpy as np

from mer_jax import (audio_features, bert, checkpointing, frontends, run_config, tasks,
                     tokenization)
from mer_jax.windows import sliding_windows

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
  mel_params: audio_features.MelParams  # The training data's log-mel parameters.
  max_power: float
  step: int
  params_sha256: str
  config_sha256: str
  tokenizer: Any = None
  text_tower: Any = None  # Frozen tower: (TextTower, bert params) to embed lyrics.
  congruence_model: 'Predictor | None' = None  # Gated fusion: its Siamese run.
  batch_size: int = 8
  # The audio front-end's rate and window for cutting waveforms, and windows -> the
  # model's audio inputs (None: a front-end of precomputed embeddings).
  audio_params: audio_features.MelParams | None = None
  featurize: Any = None
  # Compiled once per Predictor: the model and the frozen text tower.
  _jitted: Any = dataclasses.field(default=None, init=False, repr=False)
  _embed: Any = dataclasses.field(default=None, init=False, repr=False)
  # The task's adjustment of raw outputs from the run's report (the gaussian head's
  # sigma scale), looked up once.
  _transform: Any = dataclasses.field(default=None, init=False, repr=False)

  @classmethod
  def from_workdir(cls, workdir: str, batch_size: int = 8) -> 'Predictor':
    """Loads the best checkpoint of a finished (or interrupted) training run."""
    config, pre = run_config.read(workdir)
    step, state = checkpointing.restore_best(workdir)
    variables = {'params': state['params'], 'batch_stats': state.get('batch_stats', {})}
    keys = tasks.input_keys(config)
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
    model = tasks.create_model(config, bert_config)
    congruence_model = None
    if 'congruence' in keys:
      congruence_model = cls.from_workdir(config.model.congruence_workdir, batch_size)
    flat = json.dumps(config.to_dict(), sort_keys=True, default=str)
    frontend = frontends.get(config)
    audio_params, featurize = (frontend.featurizer(pre) if frontend.featurizer
                               else (None, None))
    return cls(workdir=workdir, config=config, variables=variables, model=model,
               mel_params=audio_features.MelParams(**pre['mel_params']),
               max_power=float(pre['max_power']), step=int(step),
               params_sha256=_hash_tree(variables),
               config_sha256=hashlib.sha256(flat.encode()).hexdigest()[:16],
               tokenizer=tokenizer, text_tower=text_tower,
               congruence_model=congruence_model, batch_size=batch_size,
               audio_params=audio_params, featurize=featurize)

  @property
  def task(self) -> tasks.Task:
    return tasks.get_task(self.config)

  @property
  def reads_lyrics(self) -> bool:
    keys = self.task.input_keys
    return 'lyrics_emb' in keys or 'token_ids' in keys

  @property
  def can_drop_lyrics(self) -> bool:
    """Whether the model has an audio-only mode: a fusion model trained with
    whole-lyrics dropout has learned to predict with the lyrics features zeroed."""
    return self.task.drop_lyrics_kwargs is not None

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

  def _audio_params(self) -> audio_features.MelParams:
    if self.audio_params is None:
      raise ValueError(f'the model in {self.workdir} reads precomputed song embeddings '
                       f'({frontends.name_of(self.config)} front-end), not audio: give '
                       'the song\'s embedding (--embedding=song.npy)')
    return self.audio_params

  def hop_samples(self, hop_s: float) -> int:
    """`hop_s` seconds in samples, rounded to whole STFT hops (at least one)."""
    p = self._audio_params()
    return max(1, int(round(hop_s * p.sample_rate / p.hop_length))) * p.hop_length

  def segments(self, audio_path: str, hop_s: float | None
               ) -> Iterator[tuple[int, np.ndarray]]:
    """(start sample, waveform) of each analysis window of a file.

    hop_s None: the one window training used (`crop` of the whole decoded song);
    otherwise windows `hop_s` apart over the whole song, decoded as a stream. The
    rate and window are the audio front-end's.
    """
    p = self._audio_params()
    if hop_s is None:
      yield 0, audio_features.crop(audio_features.load_audio(audio_path, p), p)
      return
    yield from sliding_windows(audio_features.stream_audio(audio_path, p),
                               audio_features.window_samples(p), self.hop_samples(hop_s))

  def input_batches(self, segments: Iterable[np.ndarray]) -> Iterator[dict]:
    """The audio front-end's inputs of waveform windows, `batch_size` windows at a time
    (the VGG's {'mel': [b, n_mels, frames]}, musicnn's {'audio_emb': [b, dim]}, ...)."""
    self._audio_params()
    batch = []
    for seg in segments:
      batch.append(seg)
      if len(batch) == self.batch_size:
        yield self.featurize(batch)
        batch = []
    if batch:
      yield self.featurize(batch)

  def mel_batches(self, segments: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The VGG's log-mels of waveform windows, `batch_size` at a time: [b, n_mels,
    frames], dB against the training data's max power, -80 dB padded."""
    for inputs in self.input_batches(segments):
      yield inputs['mel']

  def _apply(self, inputs: dict, drop_lyrics: bool = False):
    fn = self._jitted
    if fn is None:  # Keyword arguments static: one compiled function per set of them.
      fn = jax.jit(lambda v, x, kwargs: self.model.apply(v, x, **dict(kwargs)),
                   static_argnums=2)
      self._jitted = fn
    # The task's drop-lyrics arguments as they are now (the config may have changed).
    kwargs = (tuple(sorted((self.task.drop_lyrics_kwargs or {}).items()))
              if drop_lyrics else ())
    n = next(iter(inputs.values())).shape[0]
    pad = self.batch_size - n  # One compiled shape for every batch.
    if pad > 0:
      inputs = {k: np.concatenate([v, np.repeat(v[-1:], pad, axis=0)])
                for k, v in inputs.items()}
    out = fn(self.variables, inputs, kwargs)
    out = jax.tree.map(lambda a: np.asarray(a)[:n] if np.ndim(a) else np.asarray(a), out)
    if self._transform is None:
      make = self.task.output_transform
      self._transform = make(self.workdir) if make is not None else (lambda o: o)
    return self._transform(out)

  def _audio_inputs(self, waveforms, embedding: str | None, starts: list
                    ) -> Iterable[dict]:
    """Batches of the model's audio inputs: from the song's embedding file when
    given, else from its waveform windows (`waveforms()`)."""
    if self.audio_params is not None:
      if embedding is not None:
        raise ValueError(f'{embedding}: the model in {self.workdir} reads audio, not '
                         'embeddings')
      return self.input_batches(waveforms())
    starts.append(0.0)  # One window: the song.
    if embedding is None:
      if frontends.AUDIO_EMB not in self.task.input_keys:
        return [{}]  # A lyrics-only model.
      self._audio_params()  # Raises: this model needs the song's embedding.
    from mer_jax.frontends import embeddings as embeddings_lib
    return [{frontends.AUDIO_EMB: embeddings_lib.read_embedding(
        embedding, self.config.model.embeddings.pooling)[None]}]

  def predict(self, audio_path: str | None, lyrics: str | None = None,
              hop_s: float | None = 15.0, per_window: bool = False,
              audio_only_fallback: bool = False, embedding: str | None = None) -> dict:
    """Predicts one song.

    Args:
      audio_path: any format librosa reads, any sample rate, mono or stereo (None
        with `embedding`).
      lyrics: the lyrics text (None or blank: no lyrics).
      hop_s: seconds between window starts for songs longer than the window; None:
        the one window training used (`crop`).
      per_window: also return every window's outputs.
      audio_only_fallback: for a bimodal model without lyrics, predict with the lyrics
        features zeroed (as in its whole-lyrics dropout) instead of raising.
      embedding: the song's precomputed embedding (`.npy`, [dim] or [frames, dim],
        pooled as in training), for a model of the 'embeddings' front-end.
    Returns:
      {'valence', 'arousal' (0..1, window mean), 'quadrant', 'windows', 'lyrics'
      ('text', 'none', 'audio-only fallback'), 'congruence' (Siamese run or gated
      model), 'window_starts_s' and 'per_window' when asked}.
    """
    has_lyrics = has_text(lyrics)
    drop = False
    if self.reads_lyrics and not has_lyrics:
      if audio_only_fallback and self.can_drop_lyrics:
        drop = True
      elif audio_only_fallback:
        raise LyricsMissingError(
            f'{audio_path}: no lyrics, and the model in {self.workdir} has no audio-only '
            'mode (only a bimodal fusion model trained with whole-lyrics dropout, '
            'config.model.fusion.modality_dropout > 0, has one); use an audio-only run '
            '(config.model.modality = audio)')
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
        starts.append(start / self.audio_params.sample_rate)
        yield seg

    for audio_in in self._audio_inputs(waveforms, embedding, starts):
      n = next(iter(audio_in.values())).shape[0] if audio_in else 1
      inputs = dict(audio_in)
      for k, v in text_in.items():
        inputs[k] = np.repeat(v, n, axis=0)
      for k, v in extra.items():
        inputs[k] = np.full((n,), v, np.float32)
      outs.append(self._apply({k: inputs[k] for k in self.task.input_keys},
                              drop))
    result: dict[str, Any] = self.task.song_result(outs, per_window)
    bad = [k for k, v in result.items() if isinstance(v, float) and not np.isfinite(v)]
    if bad:  # The inputs were finite (decoding checks it): a fault of the model.
      raise FloatingPointError(f'{audio_path}: the model in {self.workdir} gave a '
                               f'non-finite {", ".join(bad)}')
    if congruence is not None:
      result['congruence'] = float(congruence)
    result['lyrics'] = 'audio-only fallback' if drop else ('text' if has_lyrics else 'none')
    if per_window:
      result['window_starts_s'] = starts
    return result


def predict_song(predictor: Predictor, audio_path: str | None, *, lyrics_path: str = '',
                 lyrics_text: str | None = None, hop_s: float | None = 15.0,
                 per_window: bool = False, audio_only_fallback: bool = False,
                 congruence: Predictor | None = None,
                 embedding: str | None = None) -> dict[str, Any]:
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
                          audio_only_fallback=audio_only_fallback, embedding=embedding)
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
  from mer_jax import input_pipeline, report
  config = predictor.config
  builder = prepare_lib.prepare(config)
  keys = predictor.task.input_keys
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
  for name, values in predictor.task.prepared_columns(cols).items():
    df[name] = values
  return df

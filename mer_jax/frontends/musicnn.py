"""MSD musicnn as the audio front-end (`mer_jax/musicnn.py`; weights from PyPI
musicnn==0.1.0).

Prepared data keeps musicnn's own input per song (`musicnn_mel`: the 16 kHz log-mel of
the same window the VGG features see, float16 [frames, 96], and `musicnn_frames`, its
real frames). Frozen (`config.model.musicnn.trainable` False, the default): each song's
embedding, the 200-d penultimate features of its 187-frame patches `patch_hop` apart,
pooled ('mean' or 'mean_std'), is computed once per prepared dataset and cached beside
it (`audio_emb_musicnn_<hash>.npz`); an epoch then costs the head only. Fine-tuned:
`musicnn.MusicnnTower` runs in the model, starting from the shipped weights, with its
own learning rate and warm-up; its BatchNorm statistics are part of the train state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import ml_collections
import numpy as np

from mer_jax import audio_features, frontends, models, musicnn

PATCH_BATCH = 64  # Patches per jitted call when embedding songs.


def input_params(mel_params: audio_features.MelParams) -> audio_features.MelParams:
  """musicnn's signal parameters, with the window of the training features: the same
  seconds (`num_frames` of them at the features' rate) and the same crop rule."""
  seconds = mel_params.num_frames * mel_params.hop_length / mel_params.sample_rate
  return audio_features.MelParams(
      sample_rate=musicnn.SAMPLE_RATE, n_fft=musicnn.N_FFT,
      hop_length=musicnn.HOP_LENGTH, n_mels=musicnn.N_MELS,
      num_frames=musicnn.input_frames(seconds), crop=mel_params.crop)


def window_input(y: np.ndarray, params: audio_features.MelParams
                 ) -> tuple[np.ndarray, int]:
  """A decoded 16 kHz song -> (musicnn input [frames, 96] float16, real frames) of its
  window (`audio_features.crop`)."""
  return musicnn.song_input(audio_features.crop(y, params), params.num_frames)


def prepared_inputs(mel_params: audio_features.MelParams) -> frontends.PreparedInputs:
  """musicnn's input of every song, for the window of features with `mel_params`."""
  import tensorflow_datasets as tfds
  params = input_params(mel_params)

  def example(song) -> dict:
    x, n = window_input(audio_features.load_audio(song.audio_path, params), params)
    return {'musicnn_mel': x, 'musicnn_frames': np.int32(n)}

  return frontends.PreparedInputs(
      key={'musicnn_input': params.to_dict(), 'recipe': 'log10(10000 f16(mel) + 1) v1'},
      features={'musicnn_mel': tfds.features.Tensor(
                    shape=(params.num_frames, musicnn.N_MELS), dtype=np.float16),
                'musicnn_frames': tfds.features.Scalar(dtype=np.int32)},
      example=example)


class Embedder:
  """Song inputs -> pooled frozen-musicnn embeddings, patches batched through one
  compiled function."""

  def __init__(self, patch_hop: int, pooling: str):
    import jax
    self.patch_hop, self.pooling = patch_hop, pooling
    variables = musicnn.load_variables()
    model = musicnn.Musicnn()
    self._fn = jax.jit(lambda x: model.apply(variables, x)['penultimate'])

  def patches(self, x: np.ndarray, frames: int) -> np.ndarray:
    return np.stack([x[s:s + musicnn.PATCH_FRAMES]
                     for s in musicnn.patch_starts(frames, self.patch_hop)])

  def features(self, patches: np.ndarray) -> np.ndarray:
    """[n, 187, 96] -> penultimate [n, 200], at most PATCH_BATCH at a time, each call
    padded to an even size: one compiled shape per size met (a 30 s clip is 10
    patches), at most one patch of padding."""
    out = []
    for i in range(0, len(patches), PATCH_BATCH):
      chunk = patches[i:i + PATCH_BATCH].astype(np.float32)
      n = len(chunk)
      size = n + n % 2
      if size > n:
        chunk = np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), np.float32)])
      out.append(np.asarray(self._fn(chunk))[:n])
    return np.concatenate(out)

  def embed(self, inputs: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """[(input [frames, 96], real frames)] -> [songs, dim]."""
    patches = [self.patches(x, n) for x, n in inputs]
    feats = self.features(np.concatenate(patches))
    bounds = np.cumsum([0] + [len(p) for p in patches])
    return np.stack([frontends.pool(feats[a:b], self.pooling)
                     for a, b in zip(bounds[:-1], bounds[1:])])


def cache_path(builder, config: ml_collections.ConfigDict) -> str:
  m = config.model.musicnn
  with open(musicnn.checkpoint_prefix() + '.index', 'rb') as f:
    weights = hashlib.sha256(f.read()).hexdigest()
  key = json.dumps({'model': musicnn.MODEL, 'weights': weights, 'patch_hop': m.patch_hop,
                    'pooling': m.pooling}, sort_keys=True)
  return os.path.join(builder.data_dir, 'audio_emb_musicnn_'
                      f'{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz')


def song_embeddings(builder, config: ml_collections.ConfigDict
                    ) -> dict[bytes, np.ndarray]:
  """song id -> frozen musicnn embedding of every prepared song, computed once and
  cached beside the prepared data."""
  from tqdm import tqdm

  from mer_jax import input_pipeline
  path = cache_path(builder, config)
  if os.path.isfile(path):
    with np.load(path) as z:
      return {bytes(k): v for k, v in zip(z['song_id'], z['emb'])}
  m = config.model.musicnn
  embedder = Embedder(m.patch_hop, m.pooling)
  ids, embs = [], []
  splits = [s for s in ('train', 'validation', 'test') if s in builder.info.splits]
  total = sum(builder.info.splits[s].num_examples for s in splits)
  logging.info('embedding %d songs with the frozen musicnn', total)
  with tqdm(total=total, desc='musicnn', unit='song') as bar:
    for split in splits:
      ds = builder.as_dataset(split=split, shuffle_files=False).map(
          input_pipeline.as_written(
              lambda ex: {k: ex[k] for k in ('song_id', 'musicnn_mel', 'musicnn_frames')}))
      for batch in ds.batch(16).as_numpy_iterator():
        embs.append(embedder.embed(list(zip(batch['musicnn_mel'],
                                            batch['musicnn_frames']))))
        ids.extend(batch['song_id'])
        bar.update(len(batch['song_id']))
  emb = np.concatenate(embs)
  tmp = path + '.tmp.npz'
  np.savez(tmp, song_id=np.asarray(ids, dtype=bytes), emb=emb)
  os.replace(tmp, path)  # Whole or absent: a killed run leaves no half cache.
  return dict(zip(ids, emb))


def featurizer(config: ml_collections.ConfigDict, pre: dict):
  """Windows at 16 kHz -> the frozen embedding {'audio_emb': [b, dim]}, or the
  fine-tuned tower's {'musicnn_mel', 'musicnn_frames'}."""
  params = input_params(audio_features.MelParams(**pre['mel_params']))
  m = config.model.musicnn
  embedder = None if m.trainable else Embedder(m.patch_hop, m.pooling)

  def featurize(windows: list[np.ndarray]) -> dict:
    inputs = [musicnn.song_input(w, params.num_frames) for w in windows]
    if embedder is not None:
      return {frontends.AUDIO_EMB: embedder.embed(inputs)}
    return {'musicnn_mel': np.stack([x for x, _ in inputs]).astype(np.float32),
            'musicnn_frames': np.asarray([n for _, n in inputs], np.int32)}
  return params, featurize


def get(config: ml_collections.ConfigDict) -> frontends.Frontend:
  m = config.model.musicnn
  how = 'fine-tuned' if m.trainable else 'frozen'
  description = f'musicnn MSD ({how}, {m.pooling} over 3 s patches)'
  common = dict(name='musicnn', description=description,
                prepared=prepared_inputs,
                featurizer=lambda pre: featurizer(config, pre))
  if not m.trainable:
    return frontends.Frontend(input_keys=(frontends.AUDIO_EMB,), create_tower=lambda: None,
                              embeddings=lambda b: song_embeddings(b, config), **common)
  load = musicnn.load_variables
  return frontends.Frontend(
      input_keys=('musicnn_mel', 'musicnn_frames'),
      create_tower=lambda: musicnn.MusicnnTower(m.patch_hop, m.pooling,
                                                dtype=models.compute_dtype(config)),
      pretrained=lambda: {k: {'musicnn': v} for k, v in load().items()},
      learning_rate=m.learning_rate, warmup_steps=m.warmup_steps, **common)

"""The VGG tower frozen (the probe's front-end, job 'probe'): song embeddings [out_dim]
of a fixed tower, computed once per prepared dataset and tower, cached beside the
prepared data (`audio_emb_vggfrozen_<hash>.npz`).

The tower is the best checkpoint's audio tower of the run `config.model.init_audio_from`
names (a pretraining run, a supervised run: its own `config.model.audio` settings), or
with it unset a randomly initialised `config.model.audio` tower (seeded by
`config.seed`): the baseline a pretrained tower must beat. In evaluation mode: BatchNorm
running statistics, no dropout. The head sees each feature standardised with the
training songs' mean and std (the usual linear-probe input).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

import ml_collections
import numpy as np

from mer_jax import frontends, run_config
from mer_jax.frontends import vgg as vgg_frontend

BATCH = 32  # Songs per jitted call when embedding.


def tower(config: ml_collections.ConfigDict) -> tuple[Any, dict, dict]:
  """(the VGG module, its variables {'params', 'batch_stats'}, what identifies them)."""
  import jax

  from mer_jax import models
  source = config.model.init_audio_from
  if not source:
    module = vgg_frontend.create_tower(config)
    mel = np.zeros((1, config.audio.n_mels, config.audio.num_frames), np.float32)
    variables = models.jit_init(lambda k: module.init(k, mel))(
        jax.random.fold_in(jax.random.key(config.seed), 17))
    return module, dict(variables), {'tower': 'random', 'seed': config.seed,
                                     'fields': config.model.audio.to_dict()}
  from mer_jax import checkpointing
  saved_config, _ = run_config.read(source)
  module = vgg_frontend.create_tower(saved_config)
  step, state = checkpointing.restore_best(source)
  variables = {'params': state['params'].get('audio'),
               'batch_stats': state.get('batch_stats', {}).get('audio', {})}
  if variables['params'] is None:
    raise ValueError(f'{source}: its checkpoint has no audio tower (config.model.'
                     'init_audio_from must name a run with one)')
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(variables):
    digest.update(np.asarray(leaf).tobytes())
  return module, variables, {'tower': os.path.abspath(source), 'step': int(step),
                             'weights': digest.hexdigest()[:16]}


def _embedder(module: Any, variables: dict):
  import jax
  fn = jax.jit(lambda mel: module.apply(variables, mel, train=False))

  def embed(mel: np.ndarray) -> np.ndarray:
    """[n, n_mels, frames] -> [n, out_dim], BATCH songs a call (the last padded)."""
    out = []
    for i in range(0, len(mel), BATCH):
      chunk = mel[i:i + BATCH]
      n = len(chunk)
      if n < BATCH:
        chunk = np.concatenate([chunk, np.zeros((BATCH - n, *chunk.shape[1:]),
                                                chunk.dtype)])
      out.append(np.asarray(fn(chunk), np.float32)[:n])
    return np.concatenate(out)
  return embed


def song_embeddings(builder, config: ml_collections.ConfigDict
                    ) -> dict[bytes, np.ndarray]:
  """song id -> the frozen tower's embedding of every prepared song, standardised per
  feature with the training split's mean and std (`standardize`); the raw embeddings
  are computed once and cached.

  Why standardise: a random tower's features vary by ~1e-3 between songs around large
  constant offsets, and the head's per-song LayerNorm keeps the offsets; the linear
  head then fails to train on some seeds (test arousal R² 0.44 vs 0.90 measured), which
  would credit pretraining with what is the optimiser's trouble."""
  ids, emb, train = _raw_embeddings(builder, config)
  mean, std = standardize(emb[train])
  return dict(zip(ids, (emb - mean) / std))


def standardize(train_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, std) [dim] of the training songs' embeddings [n, dim]; a constant feature
  gets std 1 (it stays 0 after centring)."""
  mean = train_emb.mean(axis=0)
  std = train_emb.std(axis=0)
  return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def _raw_embeddings(builder, config: ml_collections.ConfigDict
                    ) -> tuple[list[bytes], np.ndarray, np.ndarray]:
  """(song ids [n], raw embeddings [n, out_dim], bool [n]: the song is a training
  song)."""
  from mer_jax import input_pipeline
  module, variables, ident = tower(config)
  key = json.dumps(ident, sort_keys=True, default=str)
  path = os.path.join(builder.data_dir, 'audio_emb_vggfrozen_'
                      f'{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz')
  if os.path.isfile(path):
    with np.load(path) as z:
      return [bytes(k) for k in z['song_id']], z['emb'], z['train']
  embed = _embedder(module, variables)
  ids, embs, train = [], [], []
  logging.info('embedding the prepared songs with the frozen VGG (%s)', ident['tower'])
  for split in input_pipeline.split_names(builder):  # Streamed: BATCH songs in memory.
    ds = builder.as_dataset(split=split, shuffle_files=False).map(
        input_pipeline.as_written(lambda ex: {
            'song_id': ex['song_id'], 'mel': input_pipeline.model_mel(ex['mel'])}))
    for batch in ds.batch(BATCH).as_numpy_iterator():
      ids.extend(batch['song_id'])
      embs.append(embed(batch['mel']))
      train += [split == 'train'] * len(batch['song_id'])
  tmp = path + '.tmp.npz'
  np.savez(tmp, song_id=np.asarray(ids, dtype=bytes), emb=np.concatenate(embs),
           train=np.asarray(train))
  os.replace(tmp, path)  # Whole or absent.
  return ids, np.concatenate(embs), np.asarray(train)


def featurizer(config: ml_collections.ConfigDict, pre: dict):
  """Windows -> {'audio_emb': [b, out_dim]}: the VGG's log-mel through the frozen tower,
  standardised with the training songs' statistics (from the run's prepared data)."""
  from data_prep import prepare as prepare_lib
  params, mels = vgg_frontend.featurizer(pre)
  embed = _embedder(*tower(config)[:2])
  _, emb, train = _raw_embeddings(prepare_lib.prepare(config), config)
  mean, std = standardize(emb[train])
  return params, lambda windows: {
      frontends.AUDIO_EMB: (embed(mels(windows)['mel']) - mean) / std}


def get(config: ml_collections.ConfigDict) -> frontends.Frontend:
  source = config.model.init_audio_from or f'random (seed {config.seed})'
  return frontends.Frontend(
      name='vgg_frozen', input_keys=(frontends.AUDIO_EMB,), create_tower=lambda: None,
      description=f'VGG frozen: {source}',
      embeddings=lambda builder: song_embeddings(builder, config),
      featurizer=lambda pre: featurizer(config, pre))

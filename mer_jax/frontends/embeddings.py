"""Precomputed song embeddings from any encoder (MERT layers as Music2Emo and MARBLE use
them, CLAP audio embeddings, ...), computed by the user elsewhere.

`config.data.embeddings_dir` holds one `<song_id>.npy` per song: shape [dim] or
[frames, dim] (pooled over frames as `config.model.embeddings.pooling` says: 'mean' or
'mean_std'), float16/32/64. Preparation reads them all before any audio: a missing
file, one numpy cannot read, another shape or dtype, NaN/inf, or (with
`config.model.embeddings.dim` set) another dim is a skip listed in prep_report; with
dim 0 (any), songs whose dims disagree are an error naming a file of each dim. The
pooled float32 vectors of the written songs are stored beside the TFRecords
(`audio_emb.npz`); the model reads them as its audio features (`audio_emb`).
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from mer_jax import frontends

SIDE_FILE = 'audio_emb.npz'
DTYPES = (np.float16, np.float32, np.float64)


def folder(config: ml_collections.ConfigDict) -> str:
  d = config.data.get('embeddings_dir', '')
  if not d:
    raise ValueError("config.model.audio_frontend = 'embeddings' needs "
                     'config.data.embeddings_dir (a folder of <song_id>.npy files)')
  d = os.path.abspath(os.path.expanduser(d))
  if not os.path.isdir(d):
    raise FileNotFoundError(f'{d}: config.data.embeddings_dir is not a folder')
  return d


def read_embedding(path: str, pooling: str) -> np.ndarray:
  """One song's file -> its pooled float32 vector [dim] or [2 dim].

  Raises:
    ValueError '<kind>: <path> ...' (kinds: 'embedding missing', 'embedding
    unreadable', 'embedding shape', 'embedding dtype', 'embedding not finite').
  """
  if not os.path.isfile(path):
    raise ValueError(f'embedding missing: {path}')
  try:
    x = np.load(path, allow_pickle=False)
  except Exception as e:  # numpy raises several types for a damaged file.
    raise ValueError(f'embedding unreadable: {path} ({type(e).__name__}: {e})') from e
  if not isinstance(x, np.ndarray):
    raise ValueError(f'embedding unreadable: {path} (not a single .npy array)')
  if x.dtype not in DTYPES:
    raise ValueError(f'embedding dtype: {path} is {x.dtype}, not float16/32/64')
  if x.ndim not in (1, 2) or 0 in x.shape:
    raise ValueError(f'embedding shape: {path} is {x.shape}, not [dim] or [frames, dim]')
  if not np.all(np.isfinite(x)):
    raise ValueError(f'embedding not finite: {path} holds NaN or inf')
  return frontends.pool(x.reshape(-1, x.shape[-1]), pooling)


def prepared_inputs(config: ml_collections.ConfigDict) -> frontends.PreparedInputs:
  d = folder(config)
  pooling, want = config.model.embeddings.pooling, config.model.embeddings.dim
  values: dict[str, np.ndarray] = {}  # Filled by `skips`, written by `side_files`.

  def path(song) -> str:
    return os.path.join(d, f'{song.song_id}.npy')

  def skips(songs: list) -> dict[str, str]:
    out, dims = {}, {}
    for s in songs:
      try:
        v = read_embedding(path(s), pooling)
      except ValueError as e:
        out[s.song_id] = str(e)
        continue
      dim = v.shape[0] // (2 if pooling == 'mean_std' else 1)
      if want and dim != want:
        out[s.song_id] = (f'embedding dim: {path(s)} has dim {dim}, '
                          f'config.model.embeddings.dim is {want}')
        continue
      values[s.song_id] = v
      dims.setdefault(dim, path(s))
    if len(dims) > 1:
      raise ValueError(f'{d}: the embeddings disagree in dim: ' + ', '.join(
          f'{dim} ({p})' for dim, p in sorted(dims.items())) +
          '; set config.model.embeddings.dim to keep one and skip the others')
    return out

  def side_files(out_dir: str, song_ids: list[str]) -> None:
    np.savez(os.path.join(out_dir, SIDE_FILE), song_id=np.asarray(song_ids, dtype=bytes),
             emb=np.stack([values[i] for i in song_ids]))

  return frontends.PreparedInputs(
      key={'embeddings_dir': d, 'pooling': pooling, 'dim': want},
      skips=skips, files=path, side_files=side_files)


def song_embeddings(builder) -> dict[bytes, np.ndarray]:
  with np.load(os.path.join(builder.data_dir, SIDE_FILE)) as z:
    return {bytes(k): v for k, v in zip(z['song_id'], z['emb'])}


def get(config: ml_collections.ConfigDict) -> frontends.Frontend:
  e = config.model.embeddings
  return frontends.Frontend(
      name='embeddings', input_keys=(frontends.AUDIO_EMB,), create_tower=lambda: None,
      description=(f'embeddings from {config.data.get("embeddings_dir", "")} '
                   f'({e.pooling} over frames)'),
      prepared=lambda mel_params: prepared_inputs(config),
      embeddings=song_embeddings)

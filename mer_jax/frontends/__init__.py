"""Audio front-ends: what turns a song's audio into the features the fusion head and
the Siamese model read, one module each, looked up by `config.model.audio_frontend`.

  vgg         the thesis's VGG on the 22,050 Hz log-mel, trained from scratch
              (`mer_jax/vgg.py`; Models 1-5 are its settings)
  musicnn     MSD musicnn, pretrained (`mer_jax/musicnn.py`, weights from PyPI
              musicnn==0.1.0): frozen (song embeddings computed once per prepared
              dataset and cached beside it) or fine-tuned (`config.model.musicnn`)
  embeddings  the user's own per-song arrays (MERT, CLAP, ...) from
              `config.data.embeddings_dir`, pooled as `config.model.embeddings` says
  vgg_frozen  a VGG tower frozen (a run's, e.g. a pretrained one, or random): song
              embeddings computed once per prepared dataset (the probe's front-end)

`get(config)` imports `mer_jax.frontends.<name>` and calls its `get(config)`; the data
preparation, the input pipeline, the models' builders and prediction use only the
`Frontend` interface, so a new front-end is one new module here.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable

import ml_collections
import numpy as np

DEFAULT = 'vgg'  # Runs saved before front-ends existed.
AUDIO_EMB = 'audio_emb'  # Batch field of precomputed song embeddings [batch, dim].


@dataclasses.dataclass(frozen=True)
class PreparedInputs:
  """What a front-end adds to the prepared data of each song.

  key: what these inputs depend on; part of the prepared dataset's hash.
  features: name -> tfds feature, stored in the TFRecords beside the log-mel.
  skips: (songs) -> {song_id: reason} for songs that cannot be used (listed in
    prep_report), decided before any audio is read; None: none.
  files: (song) -> the path of an input file of the song, whose size and time join the
    hash (None: none).
  example: (song) -> {feature: value} for a song being written.
  side_files: (folder, song ids written) -> None, writes files beside the TFRecords.
  """
  key: dict
  features: dict = dataclasses.field(default_factory=dict)
  skips: Callable[[list], dict[str, str]] | None = None
  files: Callable[[Any], str] | None = None
  example: Callable[[Any], dict] | None = None
  side_files: Callable[[str, list[str]], None] | None = None


@dataclasses.dataclass(frozen=True)
class Frontend:
  """What the rest of the code needs from an audio front-end."""
  name: str
  # The batch fields the audio features come from: ('mel',), the fine-tuned musicnn's
  # ('musicnn_mel', 'musicnn_frames'), or (AUDIO_EMB,) for precomputed embeddings.
  input_keys: tuple[str, ...]
  # () -> the linen audio tower called on those fields (None: the model reads the
  # precomputed AUDIO_EMB directly).
  create_tower: Callable[[], Any]
  description: str  # One line for reports and tables, e.g. 'musicnn MSD (frozen)'.
  # (the log-mel's MelParams) -> what prepare adds per song; None: the log-mel only
  # (the VGG's data, unchanged).
  prepared: Callable[[Any], PreparedInputs] | None = None
  # (builder) -> {song id: embedding [dim]} for AUDIO_EMB; None when not needed.
  embeddings: Callable[[Any], dict[bytes, np.ndarray]] | None = None
  # () -> the tower's pretrained variables {'params', 'batch_stats'} (None: random init).
  pretrained: Callable[[], dict] | None = None
  # Prediction of new songs: (prepared metadata) -> (the MelParams whose sample rate and
  # window the waveform is cut with, (list of windows) -> input arrays of a batch).
  # None: the front-end cannot featurise audio (precomputed embeddings).
  featurizer: Callable[[dict], tuple[Any, Callable[[list[np.ndarray]], dict]]] | None = None
  # Learning rate and warm-up of a pretrained tower that is fine-tuned (None: the
  # tower trains with the main optimizer).
  learning_rate: float | None = None
  warmup_steps: int = 0


def names() -> tuple[str, ...]:
  """The front-ends that exist (modules of this package)."""
  return tuple(m.name for m in pkgutil.iter_modules(__path__))


def name_of(config: ml_collections.ConfigDict) -> str:
  return config.model.get('audio_frontend', DEFAULT)


def get(config: ml_collections.ConfigDict) -> Frontend:
  """The front-end of `config.model.audio_frontend`."""
  name = name_of(config)
  if name not in names():
    raise ValueError(f'config.model.audio_frontend must be one of {names()}, '
                     f'got {name!r}')
  return importlib.import_module(f'{__name__}.{name}').get(config)


def pool(frames: np.ndarray, pooling: str) -> np.ndarray:
  """[n, dim] -> [dim] ('mean') or [2 dim] ('mean_std': mean then population std)."""
  frames = np.asarray(frames, np.float64)
  if pooling == 'mean':
    return frames.mean(axis=0).astype(np.float32)
  if pooling == 'mean_std':
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)]).astype(np.float32)
  raise ValueError(f"pooling must be 'mean' or 'mean_std', got {pooling!r}")

"""musicnn (Pons & Serra 2019, "musicnn: pre-trained convolutional neural networks for
music audio tagging"), the MSD_musicnn model, as a linen module, with the weights that
PyPI `musicnn==0.1.0` ships (ISC licence).

The package is installed `--no-deps` and never imported (its code needs TF1 layers that
Keras 3 removed): its checkpoint and label list are read as files. Its input, as the
model was trained: 16 kHz mono, centred STFT n_fft 512 / hop 256, 96 Slaney mel bands,
`log10(10000 * mel + 1)` of the mel power cast to float16, in 187-frame (3 s) patches.

Layout of the network (time = H, frequency = W, NHWC as in the TF graph):
  input BN -> timbral convs [7, 38] and [7, 67] (204 filters, time padded by 3, valid)
  and temporal convs [128|64|32, 1] (51 filters, same), each ReLU, BN, max over
  frequency -> 561 channels per frame; mid-end: three 1-D convs of width 7 over time
  (64 filters, ReLU, BN; the 2nd and 3rd residual) -> dense concatenation, 753 channels;
  back-end: max and mean over time (interleaved, 1506), BN, dropout 0.5, dense 200 +
  ReLU, BN (the 200-d "penultimate" features), dropout 0.5, dense 50 (the MSD tags).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

SAMPLE_RATE = 16000  # Hz.
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 96
PATCH_FRAMES = 187  # 3 s: the patch length the model was trained on.
EMBED_DIM = 200  # Penultimate features.
NUM_TAGS = 50
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default.
MODEL = 'MSD_musicnn'
INSTALL_HINT = 'pip install --no-deps musicnn==0.1.0'


class Musicnn(nn.Module):
  """Patches [batch, 187, 96] (log-compressed mel, `log_mel`) -> dict of
  'penultimate' [batch, 200] (the song-embedding features), 'logits' and 'tags'
  [batch, 50] (sigmoid: MSD tag probabilities, `tags()` names them).

  Any number of frames >= 32 works (the network is fully convolutional over time);
  the weights were trained on 187.
  """
  num_tags: int = NUM_TAGS
  midend_filters: int = 64
  backend_units: int = EMBED_DIM
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    bn = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.99,
                           epsilon=BN_EPSILON, dtype=self.dtype)
    conv = functools.partial(nn.Conv, dtype=self.dtype)
    x = bn(name='input_bn')(x[..., None].astype(self.dtype))
    # Front-end. The timbral filters span 40 % and 70 % of the mel bands; time is
    # padded by hand so their 'valid' output keeps every frame.
    padded = jnp.pad(x, ((0, 0), (3, 3), (0, 0), (0, 0)))
    front = []
    for name, width in (('timbral_74', int(0.4 * N_MELS)),
                        ('timbral_77', int(0.7 * N_MELS))):
      y = nn.relu(conv(204, (7, width), padding='VALID', name=f'{name}_conv')(padded))
      front.append(jnp.max(bn(name=f'{name}_bn')(y), axis=2))
    for length in (128, 64, 32):
      name = f'temporal_{length}'
      y = nn.relu(conv(51, (length, 1), padding='SAME', name=f'{name}_conv')(x))
      front.append(jnp.max(bn(name=f'{name}_bn')(y), axis=2))
    front = jnp.concatenate(front, axis=-1)  # [batch, frames, 561]
    # Mid-end: convolutions spanning all channels are 1-D convolutions over time.
    mid = [front]
    h = front
    for i in range(3):
      y = jnp.pad(h, ((0, 0), (3, 3), (0, 0)))
      y = nn.relu(conv(self.midend_filters, (7,), padding='VALID',
                       name=f'midend_{i + 1}_conv')(y))
      y = bn(name=f'midend_{i + 1}_bn')(y)
      h = y if i == 0 else y + h
      mid.append(h)
    mid = jnp.concatenate(mid, axis=-1)  # [batch, frames, 753]
    # Back-end. TF flattens [max, mean] per channel: max_0, mean_0, max_1, ...
    pooled = jnp.stack([jnp.max(mid, axis=1), jnp.mean(mid, axis=1)], axis=-1)
    pooled = pooled.reshape(pooled.shape[0], -1)
    pooled = bn(name='pool_bn')(pooled)
    pooled = nn.Dropout(0.5, deterministic=not train)(pooled)
    y = nn.relu(nn.Dense(self.backend_units, dtype=self.dtype, name='dense')(pooled))
    penultimate = bn(name='dense_bn')(y)
    y = nn.Dropout(0.5, deterministic=not train)(penultimate)
    logits = nn.Dense(self.num_tags, dtype=self.dtype, name='tags')(y).astype(jnp.float32)
    return {'penultimate': penultimate.astype(jnp.float32), 'logits': logits,
            'tags': nn.sigmoid(logits)}


# Our module name -> the TF checkpoint's layer name (tf.compat.v1.layers numbering,
# in the order models.py builds them).
_TF_CONV = {'timbral_74_conv': 'conv2d', 'timbral_77_conv': 'conv2d_1',
            'temporal_128_conv': 'conv2d_2', 'temporal_64_conv': 'conv2d_3',
            'temporal_32_conv': 'conv2d_4', 'midend_1_conv': 'conv2d_5',
            'midend_2_conv': 'conv2d_6', 'midend_3_conv': 'conv2d_7',
            'dense': 'dense', 'tags': 'dense_1'}
_TF_BN = {'input_bn': 'batch_normalization', 'timbral_74_bn': 'batch_normalization_1',
          'timbral_77_bn': 'batch_normalization_2',
          'temporal_128_bn': 'batch_normalization_3',
          'temporal_64_bn': 'batch_normalization_4',
          'temporal_32_bn': 'batch_normalization_5',
          'midend_1_bn': 'batch_normalization_6', 'midend_2_bn': 'batch_normalization_7',
          'midend_3_bn': 'batch_normalization_8', 'pool_bn': 'batch_normalization_9',
          'dense_bn': 'batch_normalization_10'}


def package_dir() -> str:
  """The installed musicnn package's folder, found without importing it.

  Raises:
    FileNotFoundError naming the install command when the package is absent.
  """
  try:  # The installed distribution's files: no module of that name can shadow them.
    folder = str(importlib.metadata.distribution('musicnn').locate_file('musicnn'))
  except importlib.metadata.PackageNotFoundError:
    folder = ''
  if not os.path.isdir(os.path.join(folder, MODEL)):
    raise FileNotFoundError(f'the musicnn weights are not installed: {INSTALL_HINT}')
  return folder


def checkpoint_prefix(model: str = MODEL) -> str:
  """The TF checkpoint prefix: the model folder with a trailing slash (its files are
  `.index`, `.data-00000-of-00001`, `.meta`; its `checkpoint` file names another
  machine's path, so it is not used)."""
  prefix = os.path.join(package_dir(), model) + os.sep
  if not os.path.isfile(prefix + '.index'):
    raise FileNotFoundError(f'{prefix}.index: musicnn checkpoint missing; reinstall '
                            f'with {INSTALL_HINT}')
  return prefix


@functools.lru_cache(maxsize=1)
def tags() -> tuple[str, ...]:
  """The 50 MSD tag names, read from the package's configuration.py (not imported)."""
  with open(os.path.join(package_dir(), 'configuration.py')) as f:
    tree = ast.parse(f.read())
  for node in tree.body:
    if isinstance(node, ast.Assign) and node.targets[0].id == 'MSD_LABELS':
      return tuple(ast.literal_eval(node.value))
  raise ValueError('musicnn/configuration.py holds no MSD_LABELS')


@functools.lru_cache(maxsize=1)
def _checkpoint_arrays(prefix: str) -> dict[str, np.ndarray]:
  import tensorflow as tf  # A dependency already (data pipeline); only its reader.
  reader = tf.compat.v1.train.NewCheckpointReader(prefix)
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def load_variables(prefix: str | None = None) -> dict[str, dict]:
  """The shipped weights as `Musicnn` variables: {'params', 'batch_stats'} (numpy,
  float32; 792,079 numbers)."""
  arrays = _checkpoint_arrays(prefix or checkpoint_prefix())
  params, stats = {}, {}
  for ours, tf_name in _TF_CONV.items():
    kernel = arrays[f'{tf_name}/kernel']
    if ours.startswith('midend'):  # [7, C, 1, F] over (time, channels) -> 1-D [7, C, F].
      kernel = kernel[:, :, 0, :]
    params[ours] = {'kernel': kernel, 'bias': arrays[f'{tf_name}/bias']}
  for ours, tf_name in _TF_BN.items():
    params[ours] = {'scale': arrays[f'{tf_name}/gamma'], 'bias': arrays[f'{tf_name}/beta']}
    stats[ours] = {'mean': arrays[f'{tf_name}/moving_mean'],
                   'var': arrays[f'{tf_name}/moving_variance']}
  return {'params': params, 'batch_stats': stats}


def log_mel(y: np.ndarray) -> np.ndarray:
  """musicnn's input for a 16 kHz mono waveform: float32 [frames, 96],
  frames = 1 + samples // 256.

  The extractor's recipe (musicnn/extractor.py): librosa's mel power, cast to float16,
  then `log10(10000 * mel + 1)` in float16 arithmetic as numpy does it, so the values
  are the very float16 numbers the model saw. One change: 10000 * mel overflows float16
  above a mel power of 6.55 (loud tonal bins), where the extractor gives inf and the
  network NaN; it saturates here at float16's largest value (log10 -> 4.82).
  """
  import librosa
  mel = librosa.feature.melspectrogram(y=np.asarray(y, np.float32), sr=SAMPLE_RATE,
                                       hop_length=HOP_LENGTH, n_fft=N_FFT,
                                       n_mels=N_MELS).T
  with np.errstate(over='ignore'):
    scaled = np.float16(10000) * mel.astype(np.float16)
  scaled = np.minimum(scaled, np.finfo(np.float16).max)
  return np.log10(scaled + np.float16(1)).astype(np.float32)


def patch_starts(frames: int, patch_hop: int) -> list[int]:
  """First frames of the 187-frame patches of a [frames, 96] input, `patch_hop` apart
  (the extractor's batching; frames >= 187)."""
  if frames < PATCH_FRAMES:
    raise ValueError(f'{frames} frames: shorter than one {PATCH_FRAMES}-frame patch')
  return list(range(0, frames - PATCH_FRAMES + 1, patch_hop))


def repeat_pad(x: np.ndarray) -> np.ndarray:
  """Input shorter than a patch, repeated to 187 frames (musicnn's training recipe,
  'repeat-pad'); longer input unchanged."""
  if len(x) >= PATCH_FRAMES:
    return x
  reps = -(-PATCH_FRAMES // len(x))
  return np.concatenate([x] * reps)[:PATCH_FRAMES]


def input_frames(seconds: float) -> int:
  """Frames of musicnn's input kept for a window of `seconds` (a centred STFT of that
  many 16 kHz samples has 1 + samples // 256 frames; rounded up)."""
  return int(np.ceil(seconds * SAMPLE_RATE / HOP_LENGTH)) + 1


def song_input(y: np.ndarray, frames: int) -> tuple[np.ndarray, int]:
  """A 16 kHz window -> (float16 [frames, 96] musicnn input, zero-padded, and how many
  of its frames are real: >= 187, songs under 3 s being repeat-padded).

  float16 holds `log_mel`'s numbers exactly (they are float16 values)."""
  x = repeat_pad(log_mel(y))[:frames]
  out = np.zeros((frames, N_MELS), np.float16)
  out[:len(x)] = x
  return out, len(x)


class MusicnnTower(nn.Module):
  """Fine-tuned musicnn as a song-level audio tower: input [batch, frames, 96] (zero
  padded) and the real frames per song [batch] -> the penultimate features of its
  187-frame patches (`patch_hop` apart), pooled over the song's real patches: mean
  [batch, 200] or mean and std ('mean_std', [batch, 400]).

  Padded patches still pass through BatchNorm in training (their statistics include
  them); they are left out of the pooling.
  """
  patch_hop: int = PATCH_FRAMES
  pooling: str = 'mean'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, frames: jax.Array, train: bool = False) -> jax.Array:
    starts = patch_starts(x.shape[1], self.patch_hop)
    patches = jnp.stack([x[:, s:s + PATCH_FRAMES] for s in starts], axis=1)
    b, p = patches.shape[:2]
    feats = Musicnn(dtype=self.dtype, name='musicnn')(
        patches.reshape(b * p, PATCH_FRAMES, N_MELS).astype(jnp.float32),
        train=train)['penultimate'].reshape(b, p, -1)
    real = (jnp.asarray(starts)[None, :] + PATCH_FRAMES <= frames[:, None])
    w = real / jnp.maximum(real.sum(axis=1, keepdims=True), 1)
    mean = jnp.einsum('bp,bpd->bd', w, feats)
    if self.pooling == 'mean':
      return mean
    if self.pooling != 'mean_std':
      raise ValueError(f"pooling must be 'mean' or 'mean_std', got {self.pooling!r}")
    var = jnp.einsum('bp,bpd->bd', w, (feats - mean[:, None]) ** 2)
    return jnp.concatenate([mean, jnp.sqrt(var + 1e-12)], axis=-1)

"""Augmentations of log-mel spectrograms (`config.augment`), jittable: every example
draws its own randomness from one rng (the train step's, folded with the step).

A log-mel is the model's input, [batch, n_mels, frames] dB with the -80 dB floor
(`audio_features.DB_FLOOR`); what an augmentation removes becomes floor (silence):

  time_crop     `crop_frames` consecutive frames at a random start
  time_shift    the frames moved by up to `shift_frames` either way, the frames it
                vacates at the floor (not wrapped round: a song does not loop)
  gain          a uniform shift of up to `gain_db` dB either way, floored again
  spec_mask     SpecAugment's masks: `time_masks` spans of 0..`time_mask_width` frames
                and `freq_masks` spans of 0..`freq_mask_width` bands set to the floor
  patch_mask    a share `ratio` of the [patch x patch] tiles at the floor (the only
                augmentation of masking-based pretraining, as in Myna)
  mixup         each example mixed with another of the batch (weight ~ Beta(a, a));
                continuous inputs and the labels with the same weight

`augment_mel` chains the first four (crop, shift, gain, masks) as configured; all are
off by default (a run without `config.augment.enabled` is unchanged).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from mer_jax.audio_features import DB_FLOOR


def time_crop(mel: jax.Array, rng: jax.Array, crop_frames: int) -> jax.Array:
  """One example [n_mels, frames] -> [n_mels, crop_frames] from a uniform start."""
  n_mels, frames = mel.shape
  if crop_frames >= frames:
    return mel
  start = jax.random.randint(rng, (), 0, frames - crop_frames + 1)
  return jax.lax.dynamic_slice(mel, (0, start), (n_mels, crop_frames))


def time_shift(mel: jax.Array, rng: jax.Array, max_frames: int) -> jax.Array:
  """One example shifted by s ~ U{-max..max} frames: out[:, t] = mel[:, t - s], floor
  where t - s falls outside the example."""
  frames = mel.shape[1]
  s = jax.random.randint(rng, (), -max_frames, max_frames + 1)
  src = jnp.arange(frames) - s
  inside = (src >= 0) & (src < frames)
  return jnp.where(inside[None, :], mel[:, jnp.clip(src, 0, frames - 1)], DB_FLOOR)


def gain(mel: jax.Array, rng: jax.Array, max_db: float) -> jax.Array:
  """One example + g dB, g ~ U(-max_db, max_db), floored at -80 dB."""
  g = jax.random.uniform(rng, (), minval=-max_db, maxval=max_db)
  return jnp.maximum(mel + g, DB_FLOOR)


def _spans(rng: jax.Array, length: int, num: int, max_width: int) -> jax.Array:
  """[length] bool: the union of `num` spans of width ~ U{0..max_width} at uniform
  starts (each span inside 0..length)."""
  k_width, k_start = jax.random.split(rng)
  width = jax.random.randint(k_width, (num,), 0, max_width + 1)
  start = jax.random.randint(k_start, (num,), 0, length - width + 1)
  pos = jnp.arange(length)[None, :]
  return jnp.any((pos >= start[:, None]) & (pos < (start + width)[:, None]), axis=0)


def spec_mask(mel: jax.Array, rng: jax.Array, time_masks: int, time_mask_width: int,
              freq_masks: int, freq_mask_width: int) -> jax.Array:
  """One example with SpecAugment's time and frequency masks at the floor."""
  n_mels, frames = mel.shape
  k_time, k_freq = jax.random.split(rng)
  masked = jnp.zeros((n_mels, frames), bool)
  if time_masks and time_mask_width:
    masked |= _spans(k_time, frames, time_masks, min(time_mask_width, frames))[None, :]
  if freq_masks and freq_mask_width:
    masked |= _spans(k_freq, n_mels, freq_masks, min(freq_mask_width, n_mels))[:, None]
  return jnp.where(masked, DB_FLOOR, mel)


def patch_mask(mel: jax.Array, rng: jax.Array, ratio: float, patch: int) -> jax.Array:
  """One example with round(ratio x tiles) of its [patch x patch] tiles (the partial
  ones at the edges included) at the floor, the tiles drawn without replacement."""
  n_mels, frames = mel.shape
  rows, cols = -(-n_mels // patch), -(-frames // patch)
  n_masked = int(round(ratio * rows * cols))
  order = jax.random.permutation(rng, rows * cols)
  tile_masked = jnp.zeros(rows * cols, bool).at[order[:n_masked]].set(True)
  tiles = tile_masked.reshape(rows, cols)
  masked = jnp.repeat(jnp.repeat(tiles, patch, axis=0), patch, axis=1)[:n_mels, :frames]
  return jnp.where(masked, DB_FLOOR, mel)


def augment_mel(mel: jax.Array, rng: jax.Array, cfg: Any) -> jax.Array:
  """A batch [batch, n_mels, frames] through the configured chain (crop, shift, gain,
  masks; `cfg` is `config.augment`), each example with its own key of `rng`."""

  def one(x, key):
    keys = jax.random.split(key, 4)
    if cfg.crop_frames:
      x = time_crop(x, keys[0], cfg.crop_frames)
    if cfg.shift_frames:
      x = time_shift(x, keys[1], cfg.shift_frames)
    if cfg.gain_db:
      x = gain(x, keys[2], cfg.gain_db)
    if (cfg.time_masks and cfg.time_mask_width) or (cfg.freq_masks and cfg.freq_mask_width):
      x = spec_mask(x, keys[3], cfg.time_masks, cfg.time_mask_width, cfg.freq_masks,
                    cfg.freq_mask_width)
    return x

  return jax.vmap(one)(mel, jax.random.split(rng, mel.shape[0]))


# Inputs mixup may mix: continuous features of one fixed length. Token ids (a
# fine-tuned text tower) and the fine-tuned musicnn's input (its real-frame count) cannot
# be mixed; `check_mixup` refuses them.
MIXABLE = ('mel', 'lyrics_emb', 'audio_emb')


def mixup(inputs: dict, targets: jax.Array, rng: jax.Array, alpha: float
          ) -> tuple[dict, jax.Array]:
  """Mixup (Zhang et al. 2018) for regression: example i becomes
  lam_i x_i + (1 - lam_i) x_p(i) in every MIXABLE input and in `targets` [batch, 2],
  lam_i ~ Beta(alpha, alpha), p a random permutation of the batch."""
  k_lam, k_perm = jax.random.split(rng)
  n = targets.shape[0]
  lam = jax.random.beta(k_lam, alpha, alpha, (n,))
  perm = jax.random.permutation(k_perm, n)

  def mix(x):
    w = lam.reshape((n,) + (1,) * (x.ndim - 1)).astype(x.dtype)
    return w * x + (1 - w) * x[perm]

  mixed = {k: (mix(v) if k in MIXABLE else v) for k, v in inputs.items()}
  return mixed, mix(targets)


def check_mixup(input_keys: tuple[str, ...]) -> None:
  """Raises ValueError when a model's inputs include ones mixup cannot mix."""
  bad = [k for k in input_keys if k not in MIXABLE]
  if bad:
    raise ValueError(f'config.augment.mixup_alpha > 0 mixes continuous inputs only; this '
                     f'model reads {", ".join(bad)} (e.g. a fine-tuned text tower\'s token '
                     'ids): set config.augment.mixup_alpha = 0')


def batch_fn(config: Any, input_keys: tuple[str, ...]):
  """Supervised training's augmentation of a device batch, (batch, rng) -> batch (the
  log-mel through `augment_mel`, then mixup of inputs and targets), or None when
  `config.augment.enabled` is off. Pretraining makes its views itself: None too."""
  a = config.get('augment')
  if a is None or not a.enabled or config.get('task') == 'pretrain':
    return None
  if a.mixup_alpha > 0:
    check_mixup(input_keys)
    if config.model.get('head', 'point') != 'point':
      raise ValueError('config.augment.mixup_alpha > 0 mixes the labels, not the '
                       'annotator std a gaussian head\'s losses read: use the point head '
                       'or mixup_alpha = 0')
  elif 'mel' not in input_keys:
    raise ValueError('config.augment.enabled: the augmentations act on the log-mel, which '
                     f'this model does not read (its inputs: {", ".join(input_keys)})')

  def fn(batch: dict, rng: jax.Array) -> dict:
    k_mel, k_mix = jax.random.split(rng)
    inputs = dict(batch['inputs'])
    if 'mel' in inputs:
      inputs['mel'] = augment_mel(inputs['mel'], k_mel, a)
    out = {**batch, 'inputs': inputs}
    if a.mixup_alpha > 0:
      out['inputs'], out['targets'] = mixup(inputs, batch['targets'], k_mix, a.mixup_alpha)
    return out
  return fn

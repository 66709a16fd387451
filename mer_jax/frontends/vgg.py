"""The thesis's VGG tower on the 22,050 Hz log-mel, trained from scratch:
`vgg.VGG(**config.model.audio)` (Models 1-5 are its settings, `mer_jax.variants`)."""

from __future__ import annotations

import ml_collections
import numpy as np

from mer_jax import audio_features, frontends, models, vgg


def create_tower(config: ml_collections.ConfigDict) -> vgg.VGG:
  """`vgg.VGG(**config.model.audio)` in the configured compute dtype."""
  fields = config.model.audio.to_dict()
  fields['widths'] = tuple(fields['widths'])
  return vgg.VGG(**fields, dtype=models.compute_dtype(config))


def featurizer(pre: dict):
  """Windows at the training data's rate -> log-mels [b, n_mels, frames], dB against
  the training data's max power, -80 dB floor and padding."""
  params = audio_features.MelParams(**pre['mel_params'])
  max_power = float(pre['max_power'])

  def featurize(windows: list[np.ndarray]) -> dict:
    return {'mel': np.stack([
        audio_features.power_to_db(audio_features.mel_power(w, params), max_power,
                                   params.num_frames) for w in windows])}
  return params, featurize


def get(config: ml_collections.ConfigDict) -> frontends.Frontend:
  a = config.model.audio
  return frontends.Frontend(
      name='vgg', input_keys=('mel',), create_tower=lambda: create_tower(config),
      description=(f'VGG {"x".join(str(w) for w in a.widths)} '
                   f'({a.convs_per_block} conv/block, attention {a.attention})'),
      featurizer=featurizer)

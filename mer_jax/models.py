"""Fusion regression model: audio tower + lyrics features -> valence, arousal in 0..1."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mer_jax import vgg

MODALITIES = ('bimodal', 'audio', 'lyrics')


class FusionRegressor(nn.Module):
  """[batch, mels, frames] log-mel and/or [batch, text_dim] lyrics embedding ->

  [batch, 2] = (valence, arousal), sigmoid, 0..1. The lyrics embedding comes from the
  frozen text tower, computed once per dataset (see `input_pipeline`).
  """
  audio: vgg.VGG | None
  modality: str = 'bimodal'
  hidden: int = 128
  dropout: float = 0.2

  @nn.compact
  def __call__(self, mel: jax.Array | None, lyrics_emb: jax.Array | None,
               train: bool = False) -> jax.Array:
    if self.modality not in MODALITIES:
      raise ValueError(f'modality must be one of {MODALITIES}, got {self.modality!r}')
    feats = []
    if self.modality in ('bimodal', 'audio'):
      feats.append(self.audio(mel, train=train))
    if self.modality in ('bimodal', 'lyrics'):
      # LayerNorm puts encoders of different scale (MiniLM, BERT-base) on one footing.
      feats.append(nn.LayerNorm(name='text_norm')(lyrics_emb))
    x = jnp.concatenate(feats, axis=-1)
    x = nn.relu(nn.Dense(self.hidden, name='fusion_hidden')(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.sigmoid(nn.Dense(2, name='fusion_out')(x))


def create_model(config: ml_collections.ConfigDict) -> FusionRegressor:
  m = config.model
  audio = None
  if m.modality != 'lyrics':
    audio = vgg.VGG(widths=tuple(m.widths), convs_per_block=m.convs_per_block,
                    batch_norm=m.batch_norm, bn_momentum=m.bn_momentum,
                    hidden=m.classifier_hidden, out_dim=m.audio_dim, dropout=m.dropout,
                    attention=m.attention)
  return FusionRegressor(audio=audio, modality=m.modality, hidden=m.fusion_hidden,
                         dropout=m.fusion_dropout)

"""Fusion regression model: audio tower + lyrics tower -> valence, arousal in 0..1."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from mer_jax import bert, vgg

MODALITIES = ('bimodal', 'audio', 'lyrics')


class FusionRegressor(nn.Module):
  """Inputs (a dict) -> [batch, 2] = (valence, arousal), sigmoid, 0..1.

  Inputs: `mel` [batch, mels, frames] (dB) for the audio tower; for the lyrics either
  `lyrics_emb` [batch, text_dim] (frozen tower, embeddings computed once per dataset)
  or `token_ids` and `attention_mask` [batch, tokens] (fine-tuned tower, `text` set).
  """
  audio: vgg.VGG | None
  text: bert.TextTower | None = None
  modality: str = 'bimodal'
  hidden: int = 128
  dropout: float = 0.2
  text_dropout: float = 0.0
  modality_dropout: float = 0.0

  @nn.compact
  def __call__(self, inputs: dict, train: bool = False) -> jax.Array:
    if self.modality not in MODALITIES:
      raise ValueError(f'modality must be one of {MODALITIES}, got {self.modality!r}')
    feats = []
    if self.modality in ('bimodal', 'audio'):
      feats.append(self.audio(inputs['mel'], train=train))
    if self.modality in ('bimodal', 'lyrics'):
      if self.text is not None:
        emb = self.text(inputs['token_ids'], inputs['attention_mask'], train=train)
      else:
        emb = inputs['lyrics_emb']
      # LayerNorm puts encoders of different scale (MiniLM, BERT-base) on one footing.
      text = nn.LayerNorm(name='text_norm')(emb)
      text = nn.Dropout(self.text_dropout, deterministic=not train)(text)
      if self.modality == 'bimodal' and train and self.modality_dropout > 0:
        # Whole-modality dropout: without it the fusion head leans on the lyrics
        # shortcut and under-trains the audio tower.
        keep = jax.random.bernoulli(self.make_rng('dropout'), 1 - self.modality_dropout,
                                    (text.shape[0], 1))
        text = jnp.where(keep, text, 0.0)
      feats.append(text)
    x = jnp.concatenate(feats, axis=-1)
    x = nn.relu(nn.Dense(self.hidden, name='fusion_hidden')(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.sigmoid(nn.Dense(2, name='fusion_out')(x))


def input_keys(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The batch fields the configured model reads."""
  keys = []
  if config.model.modality in ('bimodal', 'audio'):
    keys.append('mel')
  if config.model.modality in ('bimodal', 'lyrics'):
    keys += ['token_ids', 'attention_mask'] if config.text.trainable else ['lyrics_emb']
  return tuple(keys)


def create_model(config: ml_collections.ConfigDict,
                 bert_config=None) -> FusionRegressor:
  """The configured model; `bert_config` is needed when the text tower is fine-tuned."""
  m = config.model
  if m.modality not in MODALITIES:
    raise ValueError(f'config.model.modality must be one of {MODALITIES}, '
                     f'got {m.modality!r}')
  audio = None
  if m.modality != 'lyrics':
    audio = vgg.VGG(widths=tuple(m.widths), convs_per_block=m.convs_per_block,
                    batch_norm=m.batch_norm, bn_momentum=m.bn_momentum,
                    hidden=m.classifier_hidden, out_dim=m.audio_dim, dropout=m.dropout,
                    attention=m.attention)
  text = None
  if m.modality != 'audio' and config.text.trainable:
    if bert_config is None:
      raise ValueError('a fine-tuned text tower needs the encoder config (bert_config)')
    text = bert.TextTower(bert_config, pooling=config.text.pooling)
  return FusionRegressor(audio=audio, text=text, modality=m.modality,
                         hidden=m.fusion_hidden, dropout=m.fusion_dropout,
                         text_dropout=m.text_dropout, modality_dropout=m.modality_dropout)

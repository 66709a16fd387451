"""The thesis's Models 1-5 and the pretrained front-ends as one table: each variant
sets every field it decides.

`apply(config, 'model3')` turns any config into Model 3 (sizes such as widths are left
as they are); the sweep looks its models up here, and `configs/model<k>.py` are the
default config with the variant applied.

  model1  lightweight VGG: 4 blocks of [3x3 conv -> ReLU -> 2x2 max-pool], global
          average pool, classifier -> 256 (ReLU) -> 64; no BatchNorm, dropout or
          attention; a fixed number of epochs at a constant learning rate
  model2  Model 1 + BatchNorm after every conv; reduce-on-plateau learning rate and
          early stopping
  model3  Model 2 + feature-wise attention on the final 64-d audio features
  model4  "true VGG" (the default): two conv + BN + ReLU per block, dropout 0.5 before
          the first linear layer and before an attention gate on the 256-d features
  model5  Model 3 + the BERT lyrics tower fine-tuned (its own learning rate and
          warm-up; gradients clipped by global norm)
  musicnn     the pretrained MSD musicnn front-end, frozen (song embeddings), with
              Model 2's training (reduce-on-plateau, early stopping)
  musicnn_ft  the same, musicnn fine-tuned (its own learning rate and warm-up)
  as_configured  the config's own model, nothing changed (a sweep over seeds of one
              configured model, e.g. for a deep ensemble)
"""

from __future__ import annotations

from typing import Any

import ml_collections

_BASE = {  # What every variant decides; each row below overrides some of it.
    'model.audio.convs_per_block': 1, 'model.audio.batch_norm': False,
    'model.audio.dropout': 0.0, 'model.audio.attention': 'none',
    'text.trainable': False, 'train.schedule': 'constant',
    'train.early_stopping': False, 'model.audio_frontend': 'vgg'}
_PLATEAU = {'model.audio.batch_norm': True, 'train.schedule': 'plateau',
            'train.early_stopping': True}

VARIANTS: dict[str, dict[str, Any]] = {
    'model1': _BASE,
    'model2': {**_BASE, **_PLATEAU},
    'model3': {**_BASE, **_PLATEAU, 'model.audio.attention': 'output'},
    'model4': {**_BASE, **_PLATEAU, 'model.audio.convs_per_block': 2,
               'model.audio.dropout': 0.5, 'model.audio.attention': 'hidden'},
    'model5': {**_BASE, **_PLATEAU, 'model.audio.attention': 'output',
               'text.trainable': True, 'text.learning_rate': 2e-5,
               'text.warmup_steps': 100, 'train.grad_clip_norm': 1.0},
    'musicnn': {**_BASE, **_PLATEAU, 'model.audio_frontend': 'musicnn',
                'model.musicnn.trainable': False},
    'musicnn_ft': {**_BASE, **_PLATEAU, 'model.audio_frontend': 'musicnn',
                   'model.musicnn.trainable': True, 'model.musicnn.learning_rate': 1e-4,
                   'model.musicnn.warmup_steps': 100, 'train.grad_clip_norm': 1.0},
    'as_configured': {},
}


def apply(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
  """`config` (changed in place and returned) as variant `name`."""
  if name not in VARIANTS:
    raise ValueError(f'unknown model variant {name!r}; the variants are '
                     f'{", ".join(VARIANTS)}')
  for key, value in VARIANTS[name].items():
    *parents, field = key.split('.')
    node = config
    for p in parents:
      node = node[p]
    node[field] = value
  return config

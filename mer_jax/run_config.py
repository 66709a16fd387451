"""A run's saved config: flattening, upgrading configs saved by older versions, and the
resume check.

Every run saves its whole config (`config.json`, and the checkpoints' metadata). A
config saved before a field existed behaved as that field's value in `ADDED`; one saved
before the model sections were split into the modules' own fields uses the old names in
`RENAMED`. `upgrade` maps either to today's layout, so old workdirs still resume,
evaluate and predict.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

# Old flat name -> today's (the model sections carry the modules' own field names).
RENAMED = {
    'model.widths': 'model.audio.widths',
    'model.convs_per_block': 'model.audio.convs_per_block',
    'model.batch_norm': 'model.audio.batch_norm',
    'model.bn_momentum': 'model.audio.bn_momentum',
    'model.classifier_hidden': 'model.audio.hidden',
    'model.audio_dim': 'model.audio.out_dim',
    'model.dropout': 'model.audio.dropout',
    'model.attention': 'model.audio.attention',
    'model.fusion_hidden': 'model.fusion.hidden',
    'model.fusion_dropout': 'model.fusion.dropout',
    'model.text_dropout': 'model.fusion.text_dropout',
    'model.modality_dropout': 'model.fusion.modality_dropout',
    'model.congruence_gate': 'model.fusion.congruence_gate',
}

# Fields added since runs were first saved, with the value a run saved before behaved
# as (fields in RESUMABLE_CHANGES need none: they never change a run's numbers).
ADDED = {
    'task': 'fusion',
    'audio.crop': 'start',
    'data.folds': 0,
    'data.holdout_fold': -1,
    'data.lyrics': True,
    'text.trim_padding': False,
    'data.merge_variant': 'bimodal_complete',
    'data.split': '70_15_15',
    'data.split_seed': 0,
    'model.congruence_file': '',
    'model.congruence_workdir': '',
    'model.fusion.congruence_gate': False,
    'model.init_audio_from': '',
    'model.audio_frontend': 'vgg',
    'data.embeddings_dir': '',
    'data.split_file': '',
    'model.musicnn.patch_hop': 187,
    'model.musicnn.pooling': 'mean',
    'model.musicnn.trainable': False,
    'model.musicnn.learning_rate': 1e-4,
    'model.musicnn.warmup_steps': 100,
    'model.embeddings.pooling': 'mean',
    'model.embeddings.dim': 0,
    'siamese.embed_dim': 64,
    'siamese.init_temperature': 0.07,
    'siamese.learn_temperature': True,
    'siamese.loss': 'infonce',
    'siamese.margin': 1.0,
    'siamese.negatives': 'random',
    'siamese.proj_hidden': 128,
    'siamese.selection': 'matched_auc',
    'siamese.text_dropout': 0.0,
    'train.compute_dtype': 'float32',
    'model.head': 'point',
    'data.synthetic.heteroscedastic': False,
    'train.loss': 'mse',
    'train.beta_nll': 0.5,
    'train.faithful': True,
    'train.optimizer': 'adamw',
    'data.labels': True,
    'model.fusion.per_dimension': False,
    'augment.enabled': False,
    'augment.crop_frames': 0,
    'augment.shift_frames': 0,
    'augment.gain_db': 0.0,
    'augment.time_masks': 0,
    'augment.time_mask_width': 0,
    'augment.freq_masks': 0,
    'augment.freq_mask_width': 0,
    'augment.mixup_alpha': 0.0,
    'pretrain.method': 'simclr',
    'pretrain.temperature': 0.1,
    'pretrain.proj_hidden': 128,
    'pretrain.proj_dim': 64,
    'pretrain.mask_ratio': 0.9,
    'pretrain.mask_patch': 16,
    'probe.head': 'linear',
    'probe.towers': (),
}

# Config fields (or prefixes) that may differ when a workdir is resumed: they do not
# change the numbers of the run.
RESUMABLE_CHANGES = ('train.num_epochs', 'job', 'sweep.', 'data.num_workers',
                     'train.text_batch_size', 'train.prefetch', 'train.kept_split_bytes',
                     'exp3.', 'cross.',
                     'eval.', 'data.split_name', 'distributed.',
                     'data.beam',  # data.beam, data.beam_options: the same data.
                     'text.pack_tokens')  # The same numbers to float rounding.


def flat(config: ml_collections.ConfigDict | dict) -> dict[str, Any]:
  """{'a.b.c': value} of a (nested) config; tuples as lists (as JSON keeps them)."""
  out = {}

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, f'{prefix}{k}.')
      else:
        out[f'{prefix}{k}'] = list(v) if isinstance(v, tuple) else v
  walk(config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config, '')
  return out


def upgrade_flat(saved: dict[str, Any]) -> dict[str, Any]:
  """A flat saved config in today's names, with ADDED's values for the fields it lacks."""
  out = {RENAMED.get(k, k): v for k, v in saved.items()}
  for k, v in ADDED.items():
    out.setdefault(k, list(v) if isinstance(v, tuple) else v)
  return out


def unflatten(values: dict[str, Any]) -> ml_collections.ConfigDict:
  nested: dict = {}
  for key, v in values.items():
    *parents, name = key.split('.')
    node = nested
    for p in parents:
      node = node.setdefault(p, {})
    node[name] = v
  return ml_collections.ConfigDict(nested)


def upgrade(config: ml_collections.ConfigDict | dict) -> ml_collections.ConfigDict:
  """A saved config (any version) in today's layout."""
  return unflatten(upgrade_flat(flat(config)))


def check_same(saved: dict[str, Any], config: ml_collections.ConfigDict,
               workdir: str) -> None:
  """Raises unless the flat `saved` config of the run in `workdir` and `config` differ
  only in RESUMABLE_CHANGES (fields added since it was saved count as ADDED's)."""
  then, now = upgrade_flat(saved), flat(config)
  # The synthetic generator's fields mean nothing to a run on another source.
  ignore = RESUMABLE_CHANGES + (() if now.get('data.source') == 'synthetic'
                                else ('data.synthetic.',))
  diff = sorted(k for k in set(then) | set(now)
                if then.get(k) != now.get(k) and not k.startswith(ignore))
  if diff:
    raise ValueError(
        f'{workdir} holds a run with a different config ({", ".join(diff)}); use a new '
        'workdir or the same config to resume')


def read(workdir: str) -> tuple[ml_collections.ConfigDict, dict]:
  """(config in today's layout, preprocessing constants) of a run, from its
  `config.json`."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: {workdir} is not a training run')
  try:
    with open(path, encoding='utf-8') as f:
      saved = json.load(f)
    config, pre = saved['config'], saved['preprocessing']
  except (ValueError, KeyError, TypeError) as e:  # Damaged or another program's file.
    raise ValueError(f'{path}: not a readable run config ({type(e).__name__}: '
                     f'{e})') from None
  return upgrade(config), pre

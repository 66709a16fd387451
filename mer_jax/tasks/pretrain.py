"""Self-supervised pretraining of the audio tower (job 'pretrain', `config.pretrain`):
two views of every song, the tower + a projection head, NT-Xent over the global batch.

  simclr   (CLMR-style) each view through `config.augment`'s chain: random crop,
           time shift, gain, SpecAugment masks (`mer_jax.augment.augment_mel`)
  masking  (Myna-style) each view a different random masking of most of the
           log-mel's [patch x patch] tiles (`config.pretrain.mask_ratio`), the only
           augmentation

Labels are never read: an unlabelled library trains as well as a labelled release. The
tower is `config.model.audio_frontend`'s (the VGG by default) under the name 'audio', so
the best checkpoint is what `config.model.init_audio_from` and the probe expect. In
evaluation the views come from a fixed key: the validation loss of every epoch scores
the same pairs. The report (`pretrain.md`): per split NT-Xent and view retrieval
(top-1, MRR: does a view find its song's other view among the split's), history and
learning curves.
"""

from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from mer_jax import augment, frontends, losses, metrics
from mer_jax.tasks import Task

METHODS = ('simclr', 'masking')


class PretrainModel(nn.Module):
  """Log-mel [batch, n_mels, frames] -> {'z1', 'z2': [batch, proj_dim]}, the
  L2-normalised projections of two views of each song. Both views go through the tower
  together (BatchNorm statistics over 2 x batch, as SimCLR's)."""
  audio: nn.Module  # The tower (named 'audio' by the field).
  method: str
  augment: Any  # config.augment (simclr's view chain).
  mask_ratio: float = 0.9
  mask_patch: int = 16
  proj_hidden: int = 128
  proj_dim: int = 64

  def views(self, mel: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    keys = jax.random.split(rng)
    if self.method == 'simclr':
      return tuple(augment.augment_mel(mel, k, self.augment) for k in keys)
    if self.method == 'masking':
      mask = jax.vmap(augment.patch_mask, in_axes=(0, 0, None, None))
      return tuple(mask(mel, jax.random.split(k, mel.shape[0]), self.mask_ratio,
                        self.mask_patch) for k in keys)
    raise ValueError(f'config.pretrain.method must be one of {METHODS}, '
                     f'got {self.method!r}')

  @nn.compact
  def __call__(self, inputs: dict, train: bool = False) -> dict[str, jax.Array]:
    mel = inputs['mel']
    # Training: fresh views every step (the step's dropout rng); evaluation: fixed.
    rng = self.make_rng('dropout') if train else jax.random.key(0)
    v1, v2 = self.views(mel, jax.random.fold_in(rng, 7))
    h = self.audio(jnp.concatenate([v1, v2]), train=train)
    z = nn.Dense(self.proj_dim, name='proj_out')(
        nn.relu(nn.Dense(self.proj_hidden, name='proj_hidden')(h.astype(jnp.float32))))
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
    n = mel.shape[0]
    return {'z1': z[:n], 'z2': z[n:]}


def create_model(config: ml_collections.ConfigDict, bert_config=None) -> PretrainModel:
  del bert_config  # Audio only.
  p = config.pretrain
  frontend = frontends.get(config)
  if frontend.input_keys != ('mel',):
    raise ValueError('pretraining needs a tower on the log-mel (config.model.'
                     f'audio_frontend = \'vgg\'), not {config.model.audio_frontend!r}')
  return PretrainModel(audio=frontend.create_tower(), method=p.method,
                       augment=config.augment, mask_ratio=p.mask_ratio,
                       mask_patch=p.mask_patch, proj_hidden=p.proj_hidden,
                       proj_dim=p.proj_dim)


def eval_step(state, batch: dict) -> tuple[dict, None]:
  """The fixed views' projections {'z1', 'z2'} of every example."""
  out = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats},
                       batch['inputs'], train=False)
  return out, None


def summarizer(temperature: float):
  def summarize(outputs: dict) -> dict[str, float]:
    """One split: NT-Xent over all its songs (the loss and checkpoint selection) and
    view retrieval (each view queries the split's other views; both directions)."""
    z1, z2 = np.asarray(outputs['z1'], np.float64), np.asarray(outputs['z2'], np.float64)
    loss = float(losses.nt_xent(jnp.asarray(z1), jnp.asarray(z2), temperature))
    ret = metrics.retrieval_metrics(z1 @ z2.T)
    return {'loss': loss, 'view_r1': 0.5 * (ret['a2l_r1'] + ret['l2a_r1']),
            'view_mrr': ret['mrr']}
  return summarize


def write_report(folder: str, outputs: dict, history: list[dict]) -> dict:
  """pretrain.md, pretrain.csv (split, nt_xent, view_r1, view_mrr), history.csv and
  learning_curves.png; returns {split: {metric: value}}."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  import pandas as pd
  os.makedirs(folder, exist_ok=True)
  temperature = outputs.pop('__temperature__')
  results = {s: summarizer(temperature)(o) for s, o in outputs.items()}
  rows = [{'split': s, 'nt_xent': r['loss'], 'view_r1': r['view_r1'],
           'view_mrr': r['view_mrr'], 'songs': len(outputs[s]['z1'])}
          for s, r in results.items()]
  pd.DataFrame(rows).to_csv(os.path.join(folder, 'pretrain.csv'), index=False,
                            float_format='%.6g')
  hist = pd.DataFrame(history)
  hist.to_csv(os.path.join(folder, 'history.csv'), index=False, float_format='%.6f')
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.plot(hist.epoch, hist.train_loss, label='train (augmented views)')
  ax.plot(hist.epoch, hist.val_loss, label='validation (fixed views)')
  ax.set(xlabel='epoch', ylabel='NT-Xent', title='Pretraining')
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(folder, 'learning_curves.png'), dpi=120)
  plt.close(fig)
  lines = ['# Self-supervised pretraining', '',
           f'Chance: NT-Xent of uniform views is log(2n - 1); view top-1 is 1/n.', '',
           '| split | songs | NT-Xent | chance | view top-1 | view MRR |',
           '|---|---:|---:|---:|---:|---:|']
  for r in rows:
    lines.append(f'| {r["split"]} | {r["songs"]} | {r["nt_xent"]:.4f} | '
                 f'{np.log(2 * r["songs"] - 1):.4f} | {r["view_r1"]:.3f} | '
                 f'{r["view_mrr"]:.3f} |')
  with open(os.path.join(folder, 'pretrain.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  return {s: {'nt_xent': r['loss'], 'view_r1': r['view_r1'], 'view_mrr': r['view_mrr']}
          for s, r in results.items()}


def headline(results: dict) -> list[str]:
  s = 'test' if 'test' in results else 'validation'
  r = results[s]
  return [f'{s} NT-Xent {r["nt_xent"]:.4f}, view top-1 {r["view_r1"]:.3f}, '
          f'MRR {r["view_mrr"]:.3f}']


def _no_song_result(outputs: list, per_window: bool) -> dict:
  raise ValueError('a pretraining run predicts nothing: probe or fine-tune its tower '
                   '(config.model.init_audio_from)')


def get_task(config: ml_collections.ConfigDict) -> Task:
  p = config.pretrain
  if p.method not in METHODS:
    raise ValueError(f'config.pretrain.method must be one of {METHODS}, got {p.method!r}')
  temperature = float(p.temperature)

  def loss_fn(out, batch, rng):
    del batch, rng
    return losses.nt_xent(out['z1'], out['z2'], temperature)

  def report(folder, outputs, history):
    return write_report(folder, {**outputs, '__temperature__': temperature}, history)

  return Task(name='pretrain', create_model=create_model, input_keys=('mel',),
              loss_fn=loss_fn, eval_step=eval_step, summarize=summarizer(temperature),
              history_keys=('loss', 'view_r1'), write_report=report,
              report_file='pretrain.md', headline=headline, drop_lyrics_kwargs=None,
              song_result=_no_song_result, song_outputs=(),
              prepared_columns=lambda outputs: {})

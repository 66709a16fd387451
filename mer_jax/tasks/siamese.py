"""The contrastive audio-lyrics task (Experiment 3): loss, evaluation and report.

`models.SiameseModel` (audio and lyrics towers with projection heads into a shared,
L2-normalised space). `train.train_and_evaluate` runs it when `config.task == 'siamese'`: the same loop,
checkpoints and early stopping as the regressor, with InfoNCE or the pairwise margin
loss, and validation by cross-modal retrieval (checkpoints and early stopping on
1 - `config.siamese.selection`: the matched-pair AUC or the mean reciprocal rank). Its report (`<workdir>/report/`):

  congruence.csv   song_id,split,quadrant,congruent,congruence (cosine of the song's
                   own audio and lyrics embeddings, -1..1)
  embeddings.npz   song_id, split, audio, lyrics: the unit embeddings of every song
  retrieval.csv    split,metric,value (Recall@1/5/10, median rank, MRR, both
                   directions, with the random expectation; matched-pair AUC)
  retrieval.md     the same as a table
  history.csv      epoch,step,train_loss,val_loss,val_mrr,val_matched_auc,learning_rate
"""

from __future__ import annotations

import os
from typing import Callable

import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd

from mer_jax import frontends, losses, metrics, models
from mer_jax.tasks import Task

LOSSES = ('infonce', 'pairwise')
RETRIEVAL_ROWS = ('r1', 'r5', 'r10', 'median_rank', 'mrr')


MODEL_FIELDS = ('embed_dim', 'proj_hidden', 'init_temperature', 'learn_temperature',
                'text_dropout')  # config.siamese's fields of models.SiameseModel.


def create_model(config: ml_collections.ConfigDict, bert_config=None
                 ) -> models.SiameseModel:
  """`SiameseModel` with both towers and config.siamese's module fields."""
  frontend = frontends.get(config)
  return models.SiameseModel(audio=frontend.create_tower(),
                             audio_keys=frontend.input_keys,
                             text=models.text_tower(config, bert_config),
                             **{k: config.siamese[k] for k in MODEL_FIELDS})


def loss_fn(config: ml_collections.ConfigDict) -> Callable:
  """(model outputs, device batch, rng) -> scalar training loss of `config.siamese`."""
  s = config.siamese
  if s.loss not in LOSSES:
    raise ValueError(f'config.siamese.loss must be one of {LOSSES}, got {s.loss!r}')
  if s.loss == 'infonce':
    return lambda out, batch, rng: losses.info_nce(out['audio'], out['lyrics'],
                                                   out['logit_scale'])
  if s.negatives not in losses.NEGATIVE_SAMPLERS:
    raise ValueError(f'config.siamese.negatives must be one of '
                     f'{losses.NEGATIVE_SAMPLERS}, got {s.negatives!r}')

  def pairwise(out, batch, rng):
    neg = losses.sample_negatives(rng, batch['quadrant'], s.negatives)
    return losses.pairwise_margin(out['audio'], out['lyrics'], neg, s.margin)
  return pairwise


def eval_step(state, batch: dict) -> tuple[dict, None]:
  """Unit embeddings {'audio', 'lyrics': [batch, embed_dim]} and the logit scale."""
  out = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats},
                       batch['inputs'], train=False)
  scale = jnp.broadcast_to(out['logit_scale'], out['audio'].shape[:1])
  return {'audio': out['audio'], 'lyrics': out['lyrics'], 'logit_scale': scale}, None


def similarity(outputs: dict) -> np.ndarray:
  """[n, n] cosine similarities: rows audio, columns lyrics (song i = row/column i)."""
  return np.asarray(outputs['audio'], np.float64) @ np.asarray(outputs['lyrics'],
                                                               np.float64).T


SELECTIONS = ('matched_auc', 'mrr')


def summarizer(config: ml_collections.ConfigDict) -> Callable[[dict], dict]:
  """`summarize` with 'selection' = 1 - config.siamese.selection's metric."""
  if config.siamese.selection not in SELECTIONS:
    raise ValueError(f'config.siamese.selection must be one of {SELECTIONS}, '
                     f'got {config.siamese.selection!r}')

  def fn(outputs):
    out = summarize(outputs)
    out['selection'] = 1.0 - out[config.siamese.selection]
    return out
  return fn


def summarize(outputs: dict) -> dict[str, float]:
  """Summary of one split's embeddings: 'loss' (InfoNCE over the whole split at the
  model's temperature), retrieval metrics, 'matched_auc' and 'temperature'."""
  sim = similarity(outputs)
  out = metrics.retrieval_metrics(sim)
  out['loss'] = float(losses.info_nce(jnp.asarray(outputs['audio']),
                                      jnp.asarray(outputs['lyrics']),
                                      float(outputs['logit_scale'][0])))
  out['matched_auc'] = metrics.matched_auc(sim)
  out['temperature'] = 1.0 / float(outputs['logit_scale'][0])
  return out


def congruence(outputs: dict) -> np.ndarray:
  """[n] cosine of each song's own audio and lyrics embeddings, -1..1."""
  return np.sum(np.asarray(outputs['audio'], np.float64)
                * np.asarray(outputs['lyrics'], np.float64), axis=-1)


def read_congruence(workdir: str) -> dict[bytes, float]:
  """song id -> congruence from a finished Siamese run's report."""
  path = os.path.join(workdir, 'report', 'congruence.csv')
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f'{path} not found: congruence comes from a finished Siamese run '
        '(config.task = "siamese"); train one into that workdir first')
  return read_congruence_file(path)


def read_congruence_file(path: str) -> dict[bytes, float]:
  """song id -> congruence from a CSV with columns song_id,congruence (e.g. the
  cross-fitted table of Experiment 3)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found (config.model.congruence_file)')
  df = pd.read_csv(path, dtype={'song_id': str})
  if not {'song_id', 'congruence'} <= set(df.columns):
    raise ValueError(f'{path}: expected columns song_id,congruence, got {list(df.columns)}')
  if df.song_id.duplicated().any() or not np.isfinite(df.congruence).all():
    raise ValueError(f'{path}: song ids must be unique and congruences finite')
  return {s.encode(): np.float32(c) for s, c in zip(df.song_id, df.congruence)}


def _decode(ids) -> list[str]:
  return [s.decode() if isinstance(s, bytes) else str(s) for s in ids]


def write_report(folder: str, outputs: dict[str, dict], history: list[dict]
                 ) -> dict[str, dict[str, float]]:
  """Writes the Siamese report (see the module docstring).

  Args:
    outputs: {split: evaluate() outputs of the best checkpoint}.
  Returns:
    {split: retrieval metrics (+ matched_auc, incongruent_auc when labelled)}.
  """
  from mer_jax.report import QUADRANT_NAMES
  os.makedirs(folder, exist_ok=True)
  frames, results, rows = [], {}, []
  for split, o in outputs.items():
    c = congruence(o)
    frames.append(pd.DataFrame({
        'song_id': _decode(o['song_id']), 'split': split,
        'quadrant': [QUADRANT_NAMES[q] for q in o['quadrant']],
        'congruent': o['congruent'], 'congruence': c}))
    res = summarize(o)
    labelled = o['congruent'] >= 0
    res['incongruent_auc'] = metrics.separation_auc(c[labelled], o['congruent'][labelled] == 1)
    results[split] = res
    rows += [{'split': split, 'metric': k, 'value': v} for k, v in res.items()]
  pd.concat(frames, ignore_index=True).to_csv(os.path.join(folder, 'congruence.csv'),
                                              index=False, float_format='%.6f')
  np.savez(os.path.join(folder, 'embeddings.npz'),
           song_id=np.concatenate([_decode(o['song_id']) for o in outputs.values()]),
           split=np.concatenate([[s] * len(o['song_id']) for s, o in outputs.items()]),
           audio=np.concatenate([o['audio'] for o in outputs.values()]),
           lyrics=np.concatenate([o['lyrics'] for o in outputs.values()]))
  pd.DataFrame(rows).to_csv(os.path.join(folder, 'retrieval.csv'), index=False)
  pd.DataFrame(history).to_csv(os.path.join(folder, 'history.csv'), index=False)
  with open(os.path.join(folder, 'retrieval.md'), 'w') as f:
    f.write(retrieval_markdown(results))
  return results


def retrieval_markdown(results: dict[str, dict[str, float]]) -> str:
  """Markdown tables of retrieval metrics per split, next to the random expectation."""
  lines = ['# Cross-modal retrieval', '',
           'Recall@k (0..1, higher is better), median rank (1 = best), mean reciprocal '
           'rank; each song\'s own lyrics (audio) is the one correct answer among the '
           'split\'s songs. Best-validation checkpoint.', '']
  for split, r in results.items():
    lines += [f'## {split} ({r["n"]} songs)', '',
              '| | Recall@1 | Recall@5 | Recall@10 | median rank | MRR |',
              '|---|---:|---:|---:|---:|---:|']
    for name, label in (('a2l', 'audio → lyrics'), ('l2a', 'lyrics → audio'),
                        ('random', 'random')):
      cells = [f'{r[f"{name}_{k}"]:.3f}' if k != 'median_rank'
               else f'{r[f"{name}_{k}"]:.1f}' for k in RETRIEVAL_ROWS]
      lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    lines += ['', f'Matched vs mismatched pair AUC: {r["matched_auc"]:.3f} (random 0.5).']
    if np.isfinite(r.get('incongruent_auc', np.nan)):
      lines.append(f'Congruent vs incongruent songs by congruence, AUC: '
                   f'{r["incongruent_auc"]:.3f}.')
    lines.append('')
  return '\n'.join(lines)


def headline(results: dict) -> list[str]:
  test = results.get('test', results['validation'])
  return [f'retrieval MRR {test["mrr"]:.3f} (random {test["random_mrr"]:.3f}), '
          f'audio->lyrics R@5 {test["a2l_r5"]:.3f}, matched AUC '
          f'{test["matched_auc"]:.3f}']


def song_result(outs: list, per_window: bool) -> dict:
  """Congruence (window mean of the cosine of the audio and lyrics embeddings)."""
  cos = np.concatenate([np.sum(o['audio'] * o['lyrics'], axis=-1) for o in outs])
  out = {'windows': cos.shape[0], 'congruence': float(cos.mean())}
  if per_window:
    out['per_window'] = [{'congruence': float(c)} for c in cos]
  return out


def prepared_columns(cols: dict) -> dict:
  return {'congruence': congruence(cols), 'audio': list(cols['audio']),
          'lyrics': list(cols['lyrics'])}


def get_task(config: ml_collections.ConfigDict) -> Task:
  return Task(name='siamese', create_model=create_model,
              input_keys=frontends.get(config).input_keys + models.lyrics_keys(config),
              loss_fn=loss_fn(config), eval_step=eval_step,
              summarize=summarizer(config),
              history_keys=('loss', 'mrr', 'matched_auc'), write_report=write_report,
              report_file='retrieval.md', headline=headline, drop_lyrics_kwargs=None,
              song_result=song_result, song_outputs=('congruence',),
              prepared_columns=prepared_columns)

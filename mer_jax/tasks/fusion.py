"""The valence/arousal regression task: `models.FusionRegressor` trained on the MSE,
checkpoints chosen on the validation MSE, the report of `mer_jax.report` (metrics,
predictions, figures)."""

# No `from __future__ import annotations`: clu reads the metric classes from the
# annotations of EvalMetrics at run time.

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from clu import metrics as clu_metrics

from mer_jax import frontends, losses, metrics, models
from mer_jax.tasks import Task


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output('loss')  # Per-song MSE over both dimensions.
  valence_mse: clu_metrics.Average.from_output('valence_se')
  arousal_mse: clu_metrics.Average.from_output('arousal_se')
  valence_mae: clu_metrics.Average.from_output('valence_ae')
  arousal_mae: clu_metrics.Average.from_output('arousal_ae')


def create_model(config: ml_collections.ConfigDict, bert_config=None
                 ) -> models.FusionRegressor:
  """`FusionRegressor(**config.model.fusion)` with the towers its modality needs."""
  modality = models.check_modality(config)
  frontend = frontends.get(config)
  return models.FusionRegressor(
      audio=frontend.create_tower() if modality != 'lyrics' else None,
      audio_keys=frontend.input_keys,
      text=models.text_tower(config, bert_config) if modality != 'audio' else None,
      modality=modality, dtype=models.compute_dtype(config),
      head=config.model.get('head', 'point'),
      detach_variance=bool(config.train.get('faithful', True)),
      **config.model.fusion.to_dict())


def input_keys(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  modality = config.model.modality
  keys = frontends.get(config).input_keys if modality in ('bimodal', 'audio') else ()
  if modality in ('bimodal', 'lyrics'):
    keys += models.lyrics_keys(config)
  if config.model.fusion.congruence_gate:
    keys += ('congruence',)
  return keys


def loss_fn(pred: jax.Array, batch: dict, rng: jax.Array) -> jax.Array:
  """MSE of (valence, arousal) predictions [batch, 2] against batch['targets']."""
  del rng
  return losses.mse(pred, batch['targets'])


def eval_step(state, batch: dict) -> tuple[dict, EvalMetrics]:
  """{'preds': [batch, 2] (valence, arousal, 0..1)} and masked metrics."""
  pred = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats},
                        batch['inputs'], train=False)
  err = pred - batch['targets']
  return {'preds': pred}, EvalMetrics.single_from_model_output(
      loss=jnp.mean(err ** 2, axis=-1), valence_se=err[:, 0] ** 2,
      arousal_se=err[:, 1] ** 2, valence_ae=jnp.abs(err[:, 0]),
      arousal_ae=jnp.abs(err[:, 1]), mask=batch['mask'])


def summarize(outputs: dict) -> dict[str, float]:
  """R^2 per dimension of one split's predictions (the clu metrics' 'loss', the MSE,
  selects checkpoints)."""
  return {f'{d}_r2': dm['r2'] for d, dm in
          metrics.per_dimension(outputs['targets'], outputs['preds']).items()}


def headline(results: dict) -> list[str]:
  return [f'test {dim:8s} R2 {m["r2"]:.3f}  RMSE {m["rmse"]:.3f}  MAE {m["mae"]:.3f}'
          for dim, m in results.get('test', {}).items()]


def song_result(outs: list, per_window: bool) -> dict:
  """Valence, arousal (window means, 0..1) and quadrant from the windows' [n, 2]."""
  from data_prep.manifest import QUADRANTS, quadrant
  pred = np.concatenate(outs)
  v, a = (float(x) for x in pred.mean(axis=0))
  out = {'windows': pred.shape[0], 'valence': v, 'arousal': a,
         'quadrant': QUADRANTS[quadrant(v, a)]}
  if per_window:
    out['per_window'] = [{'valence': float(w[0]), 'arousal': float(w[1])} for w in pred]
  return out


def prepared_columns(cols: dict) -> dict:
  out = {}
  for i, d in enumerate(metrics.DIMENSIONS):
    out[f'{d}_true'] = cols['targets'][:, i]
    out[f'{d}_pred'] = cols['preds'][:, i]
  return out


def write_report(folder: str, outputs: dict, history: list[dict]) -> dict:
  """`report.write_report`, imported when a report is written: its pandas and
  matplotlib are a second of a prediction's start-up, which writes none."""
  from mer_jax import report
  return report.write_report(folder, outputs, history)


def get_task(config: ml_collections.ConfigDict) -> Task:
  """The point head's task (`tasks.get_task` sends other heads to their modules)."""
  if config.train.get('loss', 'mse') != 'mse':
    raise ValueError(f'config.train.loss={config.train.loss!r} needs a variance: set '
                     'config.model.head=\'gaussian\' (the point head trains on \'mse\')')
  return point_task(config)


def point_task(config: ml_collections.ConfigDict) -> Task:
  """The regressor's task with the point head (MSE); the gaussian head's starts here."""
  # Only a bimodal model trained with whole-lyrics dropout has learned an audio-only
  # mode (its lyrics features zeroed).
  can_drop = (config.model.modality == 'bimodal'
              and config.model.fusion.modality_dropout > 0)
  return Task(name='fusion', create_model=create_model, input_keys=input_keys(config),
              loss_fn=loss_fn, eval_step=eval_step, summarize=summarize,
              history_keys=('loss', 'valence_r2', 'arousal_r2'),
              write_report=write_report, report_file='metrics.md',
              headline=headline,
              drop_lyrics_kwargs={'drop_lyrics': True} if can_drop else None,
              song_result=song_result, song_outputs=('valence', 'arousal', 'quadrant'),
              prepared_columns=prepared_columns)

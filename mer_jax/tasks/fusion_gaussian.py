"""The valence/arousal regressor with a Gaussian head (`config.model.head='gaussian'`):
per song and dimension a mean (0..1) and a sigma, trained by `config.train.loss`:

  gaussian_nll  negative log-likelihood of the label mean under N(mu, sigma^2)
  beta_nll      the same, each element weighted by stop_gradient(sigma^(2 beta))
                (Seitzer et al. 2022; `config.train.beta_nll`)
  annotator_kl  KL(N(label mean, annotator std^2) || N(mu, sigma^2)): the listeners'
                spread as a target (every training and validation song needs it)

With `config.train.faithful` (the default) the towers and the mean learn from the MSE
exactly as the point head's do, and the variance MLP, on the detached fusion features,
from the configured loss (Stirn et al. 2023, "Faithful heteroscedastic regression"):
trained jointly, the NLL weights every song and dimension by 1 / sigma^2, so the shared
towers neglect the harder dimension (the demo's valence R^2 fell from 0.73 to 0.18).
Checkpoints, the plateau schedule and early stopping follow the validation loss (the
configured one: sigma is part of what is chosen; on the demo, choosing on the MSE gave
the point head's numbers to 6 digits but a less trained sigma). With
`config.eval.sigma_scaling='validation'` (the default) every sigma is then multiplied,
per dimension, by the factor that minimises the validation NLL (report/sigma_scale.json;
prediction applies it too); the report also gives the unscaled NLL and 90 % coverage.
The report is the point head's (`mer_jax.report`, predictions.csv with `*_sigma` and
`*_annotator_std` columns) plus `mer_jax.uncertainty`'s: NLL, CRPS, central-interval coverage and
width, Spearman(sigma, annotator std), calibration.png.

`config.task` stays 'fusion': `tasks.get_task` finds this module by the head's name
(`<task>_<head>.py`), so no loop or job asks which head a run has.
"""

# No `from __future__ import annotations`: clu reads the metric classes from the
# annotations of EvalMetrics at run time.

import dataclasses
import json
import os

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from clu import metrics as clu_metrics

from mer_jax import losses, metrics
from mer_jax.tasks import Task, fusion

LOSSES = ('gaussian_nll', 'beta_nll', 'annotator_kl')


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output('loss')  # Per-song configured loss.
  nll: clu_metrics.Average.from_output('nll')  # Per-song Gaussian NLL (nats, mean of 2).
  valence_mse: clu_metrics.Average.from_output('valence_se')
  arousal_mse: clu_metrics.Average.from_output('arousal_se')


def element_loss(config: ml_collections.ConfigDict):
  """(mean, log_var, target, target_std) [batch, 2] each -> scalar of the configured
  loss, examples with mask 1 only (`mer_jax.losses`)."""
  name = config.train.get('loss', 'mse')
  if name not in LOSSES:
    raise ValueError(f'config.model.head=\'gaussian\' trains on one of {LOSSES} '
                     f'(config.train.loss), got {name!r}')
  if name == 'gaussian_nll':
    return lambda mu, lv, y, s, mask=None: losses.gaussian_nll(mu, lv, y, mask)
  if name == 'beta_nll':
    beta = float(config.train.get('beta_nll', 0.5))
    return lambda mu, lv, y, s, mask=None: losses.beta_nll(mu, lv, y, beta, mask)
  return lambda mu, lv, y, s, mask=None: losses.annotator_kl(mu, lv, y, s, mask)


def _per_example(loss, *args):
  """[batch] values of a scalar loss of [batch, dims] arrays, one example at a time."""
  return jax.vmap(lambda *a: loss(*(x[None] for x in a)))(*args)


def check_annotator_std(config: ml_collections.ConfigDict, splits: dict) -> None:
  """Raises, naming the dataset, unless every training and validation song has an
  annotator std in both dimensions (needed by 'annotator_kl' only)."""
  if config.train.get('loss') != 'annotator_kl':
    return
  from mer_jax import input_pipeline
  for split in ('train', 'validation'):
    ids, std = [], []
    for ex in splits[split].map(input_pipeline.as_written(
        lambda e: {'id': e['song_id'], 's': e['target_std']})).as_numpy_iterator():
      ids.append(ex['id'].decode())
      std.append(ex['s'])
    bad = [i for i, s in zip(ids, std) if not np.all(np.isfinite(s))]
    if bad:
      raise ValueError(
          f'config.train.loss=\'annotator_kl\' needs every song\'s annotator std, but '
          f'{len(bad)} of {len(ids)} {split} songs of dataset {config.data.name!r} '
          f'(source {config.data.source!r}) have none (e.g. {", ".join(bad[:3])}); '
          'DEAM, PMEmo and EmoMusic release it, a manifest gives it in valence_std / '
          'arousal_std columns; or use config.train.loss=\'gaussian_nll\'')


# What a song's prediction adds to the point head's: the predicted std (sigma, 0..1
# scale), the 90 % central interval clipped to 0..1, and the spread of the windows'
# means (std over windows; only for songs of more than one window).
INTERVAL = 0.9
SONG_UNCERTAINTY = tuple(f'{d}_{k}' for d in metrics.DIMENSIONS
                         for k in ('std', 'low90', 'high90', 'window_spread'))


def song_result(outs: list, per_window: bool) -> dict:
  """One song from its windows' outputs ({'mean', 'log_var'} [n, 2] per batch): the
  point head's keys with the window means averaged, plus SONG_UNCERTAINTY: sigma =
  sqrt(mean over windows of the predicted variance); the windows' disagreement is
  `*_window_spread`, not part of sigma."""
  from scipy import special
  mean = np.concatenate([o['mean'] for o in outs]).astype(np.float64)
  var = np.exp(np.concatenate([o['log_var'] for o in outs]).astype(np.float64))
  out = fusion.song_result([mean], False)
  z = float(special.ndtri(0.5 + INTERVAL / 2))
  for i, d in enumerate(metrics.DIMENSIONS):
    mu, sigma = out[d], float(np.sqrt(var[:, i].mean()))
    out[f'{d}_std'] = sigma
    out[f'{d}_low90'] = float(np.clip(mu - z * sigma, 0.0, 1.0))
    out[f'{d}_high90'] = float(np.clip(mu + z * sigma, 0.0, 1.0))
    if mean.shape[0] > 1:
      out[f'{d}_window_spread'] = float(mean[:, i].std())
  if per_window:
    out['per_window'] = [{**{d: float(m[i]) for i, d in enumerate(metrics.DIMENSIONS)},
                          **{f'{d}_std': float(np.sqrt(v[i]))
                             for i, d in enumerate(metrics.DIMENSIONS)}}
                         for m, v in zip(mean, var)]
  return out


SIGMA_SCALINGS = ('validation', 'none')
SCALE_FILE = 'sigma_scale.json'  # In <workdir>/report/: {'fit_on', 'valence', 'arousal'}.


def sigma_scale(outputs: dict) -> np.ndarray:
  """[2] per-dimension factors c minimising the NLL of N(mu, (c sigma)^2) on one
  split's outputs: c = sqrt(mean(((y - mu) / sigma)^2))."""
  z = (outputs['targets'] - outputs['preds']) / outputs['sigma']
  return np.sqrt(np.mean(np.square(z.astype(np.float64)), axis=0))


def scaled_outputs(workdir: str):
  """The prediction-time transform of a run: log_var + 2 log c with the report's
  factors (none before the report exists or with sigma_scaling 'none')."""
  path = os.path.join(workdir, 'report', SCALE_FILE)
  if not os.path.isfile(path):
    return lambda out: out
  with open(path) as f:
    saved = json.load(f)
  shift = np.array([2 * np.log(saved[d]) for d in metrics.DIMENSIONS], np.float32)
  return lambda out: {**out, 'log_var': out['log_var'] + shift}


def get_task(config: ml_collections.ConfigDict) -> Task:
  if config.model.get('head', 'point') != 'gaussian':
    raise ValueError('the gaussian task needs config.model.head=\'gaussian\' '
                     '(and config.task=\'fusion\')')
  loss = element_loss(config)
  point = fusion.point_task(config)
  faithful = bool(config.train.get('faithful', True))
  mode = config.eval.get('sigma_scaling', 'validation')
  if mode not in SIGMA_SCALINGS:  # Before any training.
    raise ValueError(f'config.eval.sigma_scaling must be one of {SIGMA_SCALINGS}, '
                     f'got {mode!r}')

  def loss_fn(out: dict, batch: dict, rng: jax.Array) -> jax.Array:
    """The configured loss; `faithful`: its value, but the mean's gradient is the MSE's
    (the variance MLP reads detached features, so the towers learn from the MSE only)."""
    del rng
    mu, y = out['mean'], batch['targets']
    if not faithful:
      return loss(mu, out['log_var'], y, batch['target_std'])
    mse = losses.mse(mu, y)
    return (loss(jax.lax.stop_gradient(mu), out['log_var'], y, batch['target_std'])
            + mse - jax.lax.stop_gradient(mse))

  def eval_step(state, batch: dict):
    """{'preds': [batch, 2] means, 'sigma': [batch, 2]} and masked metrics."""
    out = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats},
                         batch['inputs'], train=False)
    mu, lv, y = out['mean'], out['log_var'], batch['targets']
    err = mu - y
    sigma = jnp.exp(0.5 * lv)
    return {'preds': mu, 'sigma': sigma}, EvalMetrics.single_from_model_output(
        loss=_per_example(loss, mu, lv, y, batch['target_std']),
        nll=_per_example(losses.gaussian_nll, mu, lv, y),
        valence_se=err[:, 0] ** 2, arousal_se=err[:, 1] ** 2, mask=batch['mask'])

  def summarize(outputs: dict) -> dict:
    """R^2 and 90 % interval coverage per dimension (the clu 'loss' selects)."""
    out = {}
    for i, d in enumerate(metrics.DIMENSIONS):
      y, mu, sigma = (outputs[k][:, i] for k in ('targets', 'preds', 'sigma'))
      out[f'{d}_r2'] = metrics.regression_metrics(y, mu)['r2']
      out[f'{d}_coverage_90'] = metrics.interval_metrics(
          y, mu, sigma, (0.9,))['coverage_90']
    return out

  def write_report(folder: str, preds: dict, history: list) -> dict:
    """The point head's report and the uncertainty report, sigma scaled as
    `config.eval.sigma_scaling` says (the factors in SCALE_FILE)."""
    raw = preds
    scale = np.ones(len(metrics.DIMENSIONS))
    if mode == 'validation' and 'validation' in preds:
      scale = sigma_scale(preds['validation'])
      preds = {s: {**p, 'sigma': p['sigma'] * scale} for s, p in preds.items()}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, SCALE_FILE), 'w') as f:
      json.dump({'fit_on': mode, **dict(zip(metrics.DIMENSIONS, map(float, scale)))}, f)
    from mer_jax import report, uncertainty  # pandas, matplotlib: only for a report.
    results = report.write_report(folder, preds, history)
    extra = uncertainty.write_report(
        folder, report.predictions_frame(preds),
        scale=dict(zip(metrics.DIMENSIONS, scale)),
        unscaled=report.predictions_frame(raw) if mode != 'none' else None)
    return {s: {d: {**m, **extra.get(s, {}).get(d, {})} for d, m in dims.items()}
            for s, dims in results.items()}

  def headline(results: dict) -> list[str]:
    return [f'test {d:8s} R2 {m["r2"]:.3f}  RMSE {m["rmse"]:.3f}  NLL {m["nll"]:.3f}  '
            f'90% interval coverage {m["coverage_90"]:.3f} (width {m["width_90"]:.3f})'
            for d, m in results.get('test', {}).items()]

  def prepared_columns(cols: dict) -> dict:
    """The point head's columns (the means as *_pred) and *_sigma."""
    out = fusion.prepared_columns({**cols, 'preds': cols['mean']})
    for i, d in enumerate(metrics.DIMENSIONS):
      out[f'{d}_sigma'] = np.exp(0.5 * cols['log_var'][:, i])
    return out

  return dataclasses.replace(
      point, name='fusion_gaussian', loss_fn=loss_fn, eval_step=eval_step,
      summarize=summarize,
      history_keys=('loss', 'nll', 'valence_r2', 'arousal_r2', 'valence_coverage_90',
                    'arousal_coverage_90'),
      write_report=write_report, headline=headline, song_result=song_result,
      song_outputs=('valence', 'arousal', 'quadrant', *SONG_UNCERTAINTY),
      prepared_columns=prepared_columns,
      check_data=lambda data: check_annotator_std(config, data.splits),
      output_transform=scaled_outputs)


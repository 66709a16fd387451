"""Uncertainty report of a gaussian head (and of ensembles): proper scores, interval
coverage, agreement of sigma with the annotators' spread, and the calibration plot.

From a predictions frame with `<dim>_true`, `<dim>_pred` (the mean), `<dim>_sigma`
and optionally `<dim>_annotator_std` (annotator std, NaN where unknown), per split:

  uncertainty.csv  split,dimension,metric,value: nll (nats), crps (0..1 units),
                   coverage_50/80/90/95 and width_50/80/90/95 of the central
                   intervals mean +- z sigma, sigma_spearman (rank correlation of
                   sigma with the annotator std, where the songs have one); with
                   sigma scaling also sigma_scale and nll/coverage_90/width_90
                   _unscaled
  metrics.csv      gets the same rows appended (one table for every metric)
  metrics.md       gets an "Uncertainty" section
  calibration.png  expected vs observed coverage of central intervals (test split;
                   validation dashed), one panel per dimension

All numbers come from `mer_jax.metrics` (checked against scipy in the tests).
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mer_jax import metrics  # noqa: E402

METRICS = ('nll', 'crps', *(f'{k}_{100 * p:g}' for p in metrics.INTERVAL_LEVELS
                            for k in ('coverage', 'width')), 'sigma_spearman')
NAMES = {'nll': 'NLL ↓', 'crps': 'CRPS ↓', 'sigma_spearman': 'ρ(σ, annotator std) ↑',
         **{f'coverage_{100 * p:g}': f'cover {100 * p:g}% (→{p:g})'
            for p in metrics.INTERVAL_LEVELS},
         **{f'width_{100 * p:g}': f'width {100 * p:g}%' for p in metrics.INTERVAL_LEVELS},
         'nll_unscaled': 'NLL unscaled', 'coverage_90_unscaled': 'cover 90% unscaled',
         'width_90_unscaled': 'width 90% unscaled', 'sigma_scale': 'σ scale'}


def has_sigma(columns) -> bool:
  """Whether a predictions frame (or its column names) has every dimension's sigma."""
  return all(f'{d}_sigma' in columns for d in metrics.DIMENSIONS)


def dimension_metrics(g: pd.DataFrame, d: str) -> dict[str, float]:
  """`metrics.uncertainty_metrics` of one dimension of a predictions frame."""
  std = g[f'{d}_annotator_std'].to_numpy(np.float64) if f'{d}_annotator_std' in g else None
  return metrics.uncertainty_metrics(g[f'{d}_true'].to_numpy(), g[f'{d}_pred'].to_numpy(),
                                     g[f'{d}_sigma'].to_numpy(), std)


def metrics_table(df: pd.DataFrame) -> pd.DataFrame:
  """Long-form split,dimension,metric,value of every split of a frame with sigmas
  (sigma_spearman only where defined: songs with an annotator std, not constant)."""
  rows = []
  for split, g in df.groupby('split', sort=False):
    for d in metrics.DIMENSIONS:
      m = dimension_metrics(g, d)
      rows += [{'split': split, 'dimension': d, 'metric': k, 'value': m[k]}
               for k in METRICS if k in m]
  return pd.DataFrame(rows, columns=['split', 'dimension', 'metric', 'value'])


def markdown(table: pd.DataFrame) -> str:
  """The uncertainty section of a run's metrics.md."""
  lines = ['## Uncertainty', '',
           'The head predicts N(mean, σ²) per song and dimension. NLL and CRPS are proper '
           'scores (lower is better; CRPS is in label units and equals the MAE when σ → '
           '0). "cover p%" is the share of songs whose label lies in the central p% '
           'interval mean ± z σ: a calibrated model covers about p%; below it is '
           'over-confident. ρ compares σ with the annotators\' std per song.'
           + (' σ is the head\'s σ times the per-dimension factor fit on the '
              'validation split (config.eval.sigma_scaling; "σ scale"); the '
              '"unscaled" columns are before it.' if 'sigma_scale' in set(table.metric)
              else ''), '']
  extra = [m for m in (*(f'{u}_unscaled' for u in UNSCALED), 'sigma_scale')
           if m in set(table.metric)]
  cols = [m for m in METRICS if m in set(table.metric)] + extra
  lines += ['| split | dimension | ' + ' | '.join(NAMES[m] for m in cols) + ' |',
            '|---|---|' + '---:|' * len(cols)]
  for (split, d), g in table.groupby(['split', 'dimension'], sort=False):
    v = g.set_index('metric').value
    lines.append(f'| {split} | {d} | ' + ' | '.join(
        f'{v[m]:.4f}' if m in v else '–' for m in cols) + ' |')
  return '\n'.join(lines) + '\n'


def plot_calibration(df: pd.DataFrame, path: str, title: str = '') -> None:
  """Expected vs observed coverage of central intervals, per dimension: test solid,
  validation dashed (when present); the diagonal is perfect calibration."""
  splits = [s for s in ('test', 'validation') if s in set(df.split)] or [df.split.iloc[0]]
  fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
  for ax, d in zip(axes, metrics.DIMENSIONS):
    ax.plot([0, 1], [0, 1], 'k:', lw=1, label='calibrated')
    for split, style in zip(splits, ('o-', 's--')):
      g = df[df.split == split]
      exp, obs = metrics.calibration_curve(g[f'{d}_true'], g[f'{d}_pred'], g[f'{d}_sigma'])
      ax.plot(exp, obs, style, ms=4, label=f'{split} (n={len(g)})')
    ax.fill_between([0, 1], [0, 1], 0, color='tab:red', alpha=0.06)
    ax.text(0.62, 0.08, 'over-confident', color='tab:red', fontsize=8)
    ax.text(0.05, 0.88, 'under-confident', color='tab:blue', fontsize=8)
    ax.set(xlim=(0, 1), ylim=(0, 1), aspect='equal', xlabel='expected coverage (interval level)',
           ylabel='observed coverage', title=f'{title}{d}')
    ax.legend(fontsize=8, loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


UNSCALED = ('nll', 'coverage_90', 'width_90')  # Also reported before sigma scaling.


def write_report(folder: str, df: pd.DataFrame, scale: dict | None = None,
                 unscaled: pd.DataFrame | None = None) -> dict:
  """Writes uncertainty.csv and calibration.png into `folder` and appends to its
  metrics.csv and metrics.md (`report.write_report` wrote them); returns {split:
  {dimension: {metric: value}}}. `scale` ({dimension: factor}) and `unscaled` (the
  frame before it) add sigma_scale and <UNSCALED>_unscaled rows."""
  table = metrics_table(df)
  if unscaled is not None:
    raw = metrics_table(unscaled)
    raw = raw[raw.metric.isin(UNSCALED)].assign(metric=lambda t: t.metric + '_unscaled')
    fac = pd.DataFrame([{'split': s, 'dimension': d, 'metric': 'sigma_scale',
                         'value': scale[d]} for s in dict.fromkeys(df.split)
                        for d in metrics.DIMENSIONS])
    table = pd.concat([table, raw, fac], ignore_index=True)
  table.to_csv(os.path.join(folder, 'uncertainty.csv'), index=False, float_format='%.6f')
  table.to_csv(os.path.join(folder, 'metrics.csv'), mode='a', header=False, index=False,
               float_format='%.6f')
  with open(os.path.join(folder, 'metrics.md'), 'a') as f:
    f.write('\n' + markdown(table))
  plot_calibration(df, os.path.join(folder, 'calibration.png'))
  out: dict = {}
  for r in table.itertuples():
    out.setdefault(r.split, {}).setdefault(r.dimension, {})[r.metric] = float(r.value)
  return out

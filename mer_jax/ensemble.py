"""Deep ensembles (Lakshminarayanan et al. 2017): the seed runs of one table row
combined into one predictive distribution per song, and the rows' uncertainty table.

Each run gives N(mu_r, sigma_r^2) per song and dimension (a gaussian head; a point
head counts as sigma_r = 0). The ensemble is the equal-weight mixture, moment-matched
(`metrics.mixture`): mean of the means, variance = mean of the variances + variance of
the means. Its point metrics use the mixture mean; its uncertainty metrics the mixture
sigma (`mer_jax.uncertainty`), so a point-head ensemble is scored on its seeds'
disagreement alone.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mer_jax import metrics, uncertainty

# Columns of an uncertainty table (per-seed mean and std, or the ensemble's value).
TABLE_COLUMNS = ('model', 'kind', 'dimension', 'metric', 'mean', 'std', 'n_seeds')
# The metrics the Markdown table shows (the CSV has every one).
SHOWN = ('r2', 'rmse', 'nll', 'crps', 'coverage_90', 'width_90', 'sigma_spearman')
_SHOWN_NAMES = {'r2': 'R² ↑', 'rmse': 'RMSE ↓', **uncertainty.NAMES}


def read_runs(runs: list[str]) -> list[pd.DataFrame]:
  """Each run's report/predictions.csv indexed by (split, song_id), sorted; raises
  unless every run has the same songs in the same splits."""
  frames = []
  for r in runs:
    path = os.path.join(r, 'report', 'predictions.csv')
    if not os.path.isfile(path):
      raise FileNotFoundError(f'{path} not found: {r} is not a finished run')
    numeric = [f'{d}_{k}' for d in metrics.DIMENSIONS
               for k in ('true', 'pred', 'sigma', 'annotator_std')]
    df = pd.read_csv(path, dtype={'song_id': str}, keep_default_na=False,
                     na_values={c: [''] for c in numeric})
    frames.append(df.set_index(['split', 'song_id']).sort_index())
  for f, r in zip(frames[1:], runs[1:]):
    if not f.index.equals(frames[0].index):
      raise ValueError(f'{r}: its songs differ from {runs[0]}\'s')
  return frames


def mixture_frame(frames: list[pd.DataFrame]) -> pd.DataFrame:
  """One predictions frame (split, song_id, the first run's labels, quadrant columns
  and annotator std) whose <dim>_pred / <dim>_sigma are the runs' mixture, plus
  <dim>_seed_spread (population std of the runs' means)."""
  base = frames[0]
  keep = [c for c in base.columns if not c.endswith(('_pred', '_sigma'))]
  out = base[keep].copy()
  for d in metrics.DIMENSIONS:
    mus = np.stack([f[f'{d}_pred'].to_numpy(np.float64) for f in frames])
    sigmas = np.stack([f[f'{d}_sigma'].to_numpy(np.float64) if f'{d}_sigma' in f
                       else np.zeros(len(f)) for f in frames])
    out[f'{d}_pred'], out[f'{d}_sigma'] = metrics.mixture(mus, sigmas)
    out[f'{d}_seed_spread'] = mus.std(axis=0)
  return out.reset_index()


def _scores(df: pd.DataFrame, d: str) -> dict[str, float]:
  """Point metrics and, where every sigma is positive, uncertainty metrics of one
  dimension of a predictions frame (one split)."""
  y, mu = df[f'{d}_true'].to_numpy(), df[f'{d}_pred'].to_numpy()
  out = metrics.regression_metrics(y, mu)
  if f'{d}_sigma' in df and np.all(df[f'{d}_sigma'].to_numpy() > 0):
    out.update(uncertainty.dimension_metrics(df, d))
  return out


def table(groups: dict[str, list[str]], split: str = 'test'
          ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
  """(rows of TABLE_COLUMNS: per row of `groups` {label: run dirs} the seeds' mean and
  std ('seeds') and, with 2+ runs, the ensemble's value ('ensemble'); {label: the
  ensemble's predictions frame}) on `split`."""
  rows, mixtures = [], {}
  for label, runs in groups.items():
    frames = read_runs(runs)
    per_run = [f.xs(split, level='split').reset_index() for f in frames]
    for d in metrics.DIMENSIONS:
      scores = [_scores(f, d) for f in per_run]
      for m in scores[0]:
        vals = np.array([s[m] for s in scores if m in s])
        if len(vals) == len(scores):
          rows.append({'model': label, 'kind': 'seeds', 'dimension': d, 'metric': m,
                       'mean': vals.mean(), 'std': vals.std(ddof=1) if len(vals) > 1
                       else 0.0, 'n_seeds': len(vals)})
    if len(runs) < 2:
      continue
    mix = mixture_frame(frames)
    mixtures[label] = mix
    test = mix[mix.split == split]
    for d in metrics.DIMENSIONS:
      rows += [{'model': label, 'kind': 'ensemble', 'dimension': d, 'metric': m,
                'mean': v, 'std': 0.0, 'n_seeds': len(runs)}
               for m, v in _scores(test, d).items()]
  return pd.DataFrame(rows, columns=list(TABLE_COLUMNS)), mixtures


def markdown(tab: pd.DataFrame, split: str = 'test') -> str:
  """Rows x dimensions: the seeds' mean ± std, then the ensemble's value."""
  cols = [m for m in SHOWN if m in set(tab.metric)]
  lines = [f'## Uncertainty and deep ensembles ({split})', '',
           'Per row: one run (mean ± std over seeds), then the ensemble of those runs '
           '(mixture of their Gaussians: mean of means, variance = mean of variances + '
           'variance of means; a point head counts as σ = 0, so its ensemble\'s σ is '
           'the seeds\' disagreement). A calibrated model covers 90 % of songs with '
           'its 90 % interval; – = not defined (a point head alone has no σ; ρ needs '
           'annotator std).', '',
           '| model | | dimension | ' + ' | '.join(_SHOWN_NAMES[m] for m in cols) + ' |',
           '|---|---|---|' + '---:|' * len(cols)]
  for (model, kind, d), g in tab.groupby(['model', 'kind', 'dimension'], sort=False):
    v = g.set_index('metric')
    n = int(g.n_seeds.iloc[0])
    cells = []
    for m in cols:
      if m not in v.index:
        cells.append('–')
      elif kind == 'seeds' and n > 1:
        cells.append(f'{v.loc[m, "mean"]:.4f} ± {v.loc[m, "std"]:.4f}')
      else:
        cells.append(f'{v.loc[m, "mean"]:.4f}')
    what = f'{n} seeds' if kind == 'seeds' else f'ensemble of {n}'
    lines.append(f'| {model} | {what} | {d} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines) + '\n'


def has_sigma(groups: dict[str, list[str]]) -> bool:
  """Whether any run of `groups` has a gaussian head (sigma columns)."""
  for runs in groups.values():
    for r in runs:
      with open(os.path.join(r, 'report', 'predictions.csv')) as f:
        if uncertainty.has_sigma(f.readline().strip().split(',')):  # The header.
          return True
  return False


def _slug(label: str) -> str:
  return ''.join(c if c.isalnum() or c in '-_' else '_' for c in label).strip('_')


def write(folder: str, groups: dict[str, list[str]], split: str = 'test') -> str:
  """Writes into `folder`: uncertainty.csv (`table`), ensemble_predictions.csv (every
  ensemble's mixture per song, with a model column) and calibration_<row>.png per
  ensemble; returns the Markdown section (`markdown`)."""
  os.makedirs(folder, exist_ok=True)
  tab, mixtures = table(groups, split)
  tab.to_csv(os.path.join(folder, 'uncertainty.csv'), index=False, float_format='%.8g')
  if mixtures:
    pd.concat([m.assign(model=label) for label, m in mixtures.items()]).to_csv(
        os.path.join(folder, 'ensemble_predictions.csv'), index=False, float_format='%.6f')
  figures = []
  for label, mix in mixtures.items():
    if all(np.all(mix[f'{d}_sigma'] > 0) for d in metrics.DIMENSIONS):
      name = f'calibration_{_slug(label)}.png'
      uncertainty.plot_calibration(mix, os.path.join(folder, name),
                                   f'{label}, ensemble of {len(groups[label])}: ')
      figures.append(f'`{name}`')
  text = markdown(tab, split)
  if figures:
    text += '\nCalibration of each ensemble (expected vs observed coverage): ' + ', '.join(
        figures) + '.\n'
  return text

"""Run report: metrics tables, predictions and figures in `<workdir>/report/`.

  metrics.csv        long form: split,dimension,metric,value (mse, rmse, mae, r2)
  metrics.md         the same as a table per split, and the skill beyond the quadrant
  quadrant_skill.csv split,dimension,metric,value: skill_vs_quadrant (1 - MSE / MSE of
                     the quadrant-centre baseline) and r2_within_quadrant
                     (`metrics.quadrant_skill`; true quadrant: official where released)
  predictions.csv    song_id,split,quadrant,official_quadrant,valence_true,valence_pred,
                     arousal_true,arousal_pred (quadrant: of the labels at 0.5; official:
                     the release's own label, empty when it has none); a gaussian
                     head adds valence_sigma,arousal_sigma (predicted) and
                     valence_annotator_std,arousal_annotator_std (empty where
                     unknown);
                     `mer_jax.uncertainty` then adds its files
  history.csv        epoch,step,train_loss,val_loss
  pred_vs_true.png   predicted vs true per dimension (test split), coloured by quadrant
  va_distribution.png  label distributions per split with the quadrant boundaries
  learning_curves.png  training and validation loss per epoch
"""

from __future__ import annotations

import functools
import io
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mer_jax import metrics  # noqa: E402

QUADRANT_NAMES = ('Q1', 'Q2', 'Q3', 'Q4')
QUADRANT_COLORS = ('tab:orange', 'tab:red', 'tab:blue', 'tab:green')
_BETTER = {'mse': '↓', 'rmse': '↓', 'mae': '↓', 'r2': '↑'}


def predictions_frame(preds: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
  """The rows of predictions.csv from each split's outputs (`train.evaluate`)."""
  frames = []
  for split, p in preds.items():
    frames.append(pd.DataFrame({
        'song_id': [s.decode() if isinstance(s, bytes) else s for s in p['song_id']],
        'split': split,
        'quadrant': [QUADRANT_NAMES[q] for q in p['quadrant']],
        'official_quadrant': [QUADRANT_NAMES[q] if q >= 0 else ''
                              for q in p.get('official_quadrant', -np.ones(len(p['quadrant']),
                                                                           int))],
        'valence_true': p['targets'][:, 0], 'valence_pred': p['preds'][:, 0],
        'arousal_true': p['targets'][:, 1], 'arousal_pred': p['preds'][:, 1]}))
    if 'sigma' in p:  # A gaussian head: its sigma and the annotators' std (NaN: none).
      for i, d in enumerate(metrics.DIMENSIONS):
        frames[-1][f'{d}_sigma'] = p['sigma'][:, i]
        frames[-1][f'{d}_annotator_std'] = (p['target_std'][:, i] if 'target_std' in p
                                  else np.full(len(p['sigma']), np.nan))
  return pd.concat(frames, ignore_index=True)


def metrics_table(df: pd.DataFrame) -> pd.DataFrame:
  """Long-form split,dimension,metric,value from a predictions frame."""
  rows = []
  for split, g in df.groupby('split', sort=False):
    for d in metrics.DIMENSIONS:
      m = metrics.regression_metrics(g[f'{d}_true'].to_numpy(), g[f'{d}_pred'].to_numpy())
      rows += [{'split': split, 'dimension': d, 'metric': k, 'value': m[k]}
               for k in metrics.METRICS]
  return pd.DataFrame(rows)


def _true_quadrants(g: pd.DataFrame) -> np.ndarray:
  """The true quadrant (0..3) of each row: the release's own where it has one, else
  the labels' at 0.5 (`config.eval.quadrant_source`'s default, 'official')."""
  names = {q: i for i, q in enumerate(QUADRANT_NAMES)}
  official = g.official_quadrant.map(names).to_numpy(np.float64)  # '' -> NaN: none.
  return metrics.true_quadrants(g.quadrant.map(names).to_numpy(), official, 'official')


def skill_table(df: pd.DataFrame) -> pd.DataFrame:
  """Long-form split,dimension,metric,value of `metrics.quadrant_skill` per split, the
  quadrant centres from the 'train' rows' labels (empty without a train split)."""
  train = df[df.split == 'train']
  if not len(train):
    return pd.DataFrame(columns=['split', 'dimension', 'metric', 'value'])
  centres = metrics.quadrant_centres(
      train[[f'{d}_true' for d in metrics.DIMENSIONS]].to_numpy(), _true_quadrants(train))
  rows = []
  for split, g in df.groupby('split', sort=False):
    c = centres[_true_quadrants(g)]
    for i, d in enumerate(metrics.DIMENSIONS):
      m = metrics.quadrant_skill(g[f'{d}_true'], g[f'{d}_pred'], c[:, i])
      rows += [{'split': split, 'dimension': d, 'metric': k, 'value': m[k]}
               for k in metrics.SKILL_METRICS]
  return pd.DataFrame(rows)


def _skill_markdown(skill: pd.DataFrame) -> str:
  if not len(skill):
    return ''
  lines = ['## Skill beyond the quadrant', '',
           'Against the quadrant-centre baseline (the training mean of each song\'s true '
           'quadrant): skill = 1 - MSE / MSE(quadrant centre), negative when the model '
           'knows less than the quadrant; within-quadrant R² = R² after subtracting each '
           'true quadrant\'s training mean from labels and predictions.', '',
           '| split | dimension | skill ↑ | within-quadrant R² ↑ |', '|---|---|---:|---:|']
  for (split, d), g in skill.groupby(['split', 'dimension'], sort=False):
    v = g.set_index('metric').value
    lines.append(f'| {split} | {d} | {v["skill_vs_quadrant"]:.4f} | '
                 f'{v["r2_within_quadrant"]:.4f} |')
  return '\n'.join(lines) + '\n'


def _markdown(table: pd.DataFrame, counts: dict[str, int]) -> str:
  lines = ['# Results', '',
           'Valence and arousal on a 0..1 scale; best-validation-epoch parameters.', '']
  for split, g in table.groupby('split', sort=False):
    lines += [f'## {split} ({counts[split]} songs)', '',
              '| dimension | ' + ' | '.join(f'{m.upper()} {_BETTER[m]}'
                                            for m in metrics.METRICS) + ' |',
              '|---|' + '---:|' * len(metrics.METRICS)]
    for d in metrics.DIMENSIONS:
      vals = g[g.dimension == d].set_index('metric')['value']
      lines.append(f'| {d} | ' + ' | '.join(f'{vals[m]:.4f}' for m in metrics.METRICS)
                   + ' |')
    lines.append('')
  return '\n'.join(lines)


def _plot_pred_vs_true(df: pd.DataFrame, path: str, split: str) -> None:
  g = df[df.split == split]
  fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
  for ax, d in zip(axes, metrics.DIMENSIONS):
    for q, c in zip(QUADRANT_NAMES, QUADRANT_COLORS):
      s = g[g.quadrant == q]
      ax.scatter(s[f'{d}_true'], s[f'{d}_pred'], s=18, c=c, label=q, alpha=0.8)
    ax.plot([0, 1], [0, 1], 'k--', lw=1)
    r2 = metrics.regression_metrics(g[f'{d}_true'].to_numpy(),
                                    g[f'{d}_pred'].to_numpy())['r2']
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f'true {d}', ylabel=f'predicted {d}',
           title=f'{d} ({split}, n={len(g)}): R² = {r2:.3f}', aspect='equal')
    ax.legend(title='true quadrant', fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_distribution(df: pd.DataFrame, path: str) -> None:
  """va_distribution.png of the true labels in `df` (split, quadrant, valence_true,
  arousal_true). The picture depends on those columns only, so every run on the same
  songs (a sweep's, 1-2 s of matplotlib each) draws the same one: it is drawn once per
  process and written again from memory."""
  labels = df[['split', 'quadrant', 'valence_true', 'arousal_true']]
  png = _distribution_png(labels.to_csv(index=False))
  with open(path, 'wb') as f:
    f.write(png)


@functools.lru_cache(maxsize=4)
def _distribution_png(labels_csv: str) -> bytes:
  """The PNG of `plot_distribution` from its columns as CSV text (full float precision)."""
  df = pd.read_csv(io.StringIO(labels_csv), dtype={'split': str, 'quadrant': str},
                   keep_default_na=False)
  splits = list(dict.fromkeys(df.split))
  fig, axes = plt.subplots(len(splits), 3, figsize=(12, 3.4 * len(splits)), squeeze=False)
  bins = np.linspace(0, 1, 21)
  for row, split in zip(axes, splits):
    g = df[df.split == split]
    for ax, d in zip(row[:2], metrics.DIMENSIONS):
      ax.hist(g[f'{d}_true'], bins=bins, color='tab:gray', edgecolor='white')
      ax.axvline(0.5, color='k', lw=1, ls='--')
      ax.set(xlabel=d, ylabel='songs', title=f'{split}: {d} (n={len(g)})')
    ax = row[2]
    for q, c in zip(QUADRANT_NAMES, QUADRANT_COLORS):
      s = g[g.quadrant == q]
      ax.scatter(s.valence_true, s.arousal_true, s=10, c=c, label=f'{q} ({len(s)})')
    ax.axvline(0.5, color='k', lw=1)
    ax.axhline(0.5, color='k', lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel='valence', ylabel='arousal',
           title=f'{split}: valence x arousal', aspect='equal')
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.0, 1.0))
  fig.tight_layout()
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=100)
  plt.close(fig)
  return buf.getvalue()


def _plot_history(history: pd.DataFrame, path: str) -> None:
  fig, ax = plt.subplots(figsize=(6, 4))
  ax.plot(history.epoch, history.train_loss, 'o-', label='train (dropout on)')
  ax.plot(history.epoch, history.val_loss, 's-', label='validation')
  ax.set(xlabel='epoch', ylabel='MSE (valence, arousal)', yscale='log',
         title='learning curves')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def write_report(folder: str, preds: dict[str, dict[str, np.ndarray]],
                 history: list[dict]) -> dict:
  """Writes every report file; returns {split: {dimension: {metric: value}}}."""
  os.makedirs(folder, exist_ok=True)
  df = predictions_frame(preds)
  table = metrics_table(df)
  df.to_csv(os.path.join(folder, 'predictions.csv'), index=False, float_format='%.6f')
  table.to_csv(os.path.join(folder, 'metrics.csv'), index=False, float_format='%.6f')
  counts = df.split.value_counts().to_dict()
  skill = skill_table(df)
  skill.to_csv(os.path.join(folder, 'quadrant_skill.csv'), index=False, float_format='%.6f')
  with open(os.path.join(folder, 'metrics.md'), 'w') as f:
    f.write(_markdown(table, counts) + '\n' + _skill_markdown(skill))
  hist = pd.DataFrame(history)
  hist.to_csv(os.path.join(folder, 'history.csv'), index=False, float_format='%.6f')
  eval_split = 'test' if 'test' in counts else list(counts)[-1]
  _plot_pred_vs_true(df, os.path.join(folder, 'pred_vs_true.png'), eval_split)
  plot_distribution(df, os.path.join(folder, 'va_distribution.png'))
  if len(hist):
    _plot_history(hist, os.path.join(folder, 'learning_curves.png'))
  return {s: {d: {m: float(g[(g.dimension == d) & (g.metric == m)].value.iloc[0])
                  for m in metrics.METRICS} for d in metrics.DIMENSIONS}
          for s, g in table.groupby('split', sort=False)}

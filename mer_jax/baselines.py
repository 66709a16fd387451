"""Label-only baselines on a dataset's official (or stored) split.

  random           uniform 0..1 per song and dimension (seeded)
  mean             the training-set mean of each dimension
  quadrant_centre  the training-set mean of the song's *true* quadrant: how much of a
                   regression score the quadrant alone explains (MERGE was curated for
                   quadrant classification)

Only labels and splits are read; no audio is decoded.
"""

from __future__ import annotations

import logging
import os

import ml_collections
import numpy as np
import pandas as pd

from mer_jax import metrics

BASELINES = ('random', 'mean', 'quadrant_centre')
COLUMNS = ('baseline', 'dimension', 'mse', 'rmse', 'mae', 'r2')


def predict(train_y: np.ndarray, train_q: np.ndarray, test_q: np.ndarray,
            seed: int = 0) -> dict[str, np.ndarray]:
  """Baseline predictions [n_test, 2] (valence, arousal) from training labels [n, 2]
  and quadrants (0..3)."""
  n = len(test_q)
  mean = train_y.mean(axis=0)
  centres = np.tile(mean, (4, 1))
  for q in range(4):
    if np.any(train_q == q):
      centres[q] = train_y[train_q == q].mean(axis=0)
    else:
      logging.warning('no training song in Q%d: its centre is the overall mean', q + 1)
  return {'random': np.random.default_rng(seed).uniform(0, 1, size=(n, 2)),
          'mean': np.tile(mean, (n, 1)),
          'quadrant_centre': centres[np.asarray(test_q)]}


def table(test_y: np.ndarray, preds: dict[str, np.ndarray]) -> pd.DataFrame:
  rows = []
  for name in BASELINES:
    for i, d in enumerate(metrics.DIMENSIONS):
      m = metrics.regression_metrics(test_y[:, i], preds[name][:, i])
      rows.append({'baseline': name, 'dimension': d, **{k: m[k] for k in metrics.METRICS}})
  return pd.DataFrame(rows, columns=COLUMNS)


def markdown(df: pd.DataFrame, n_train: int, n_test: int) -> str:
  lines = ['# Baselines', '',
           f'Test split ({n_test} songs); statistics from the training split '
           f'({n_train} songs). Valence and arousal on 0..1.', '',
           '| baseline | dimension | MSE ↓ | RMSE ↓ | MAE ↓ | R² ↑ |',
           '|---|---|---:|---:|---:|---:|']
  for r in df.itertuples():
    lines.append(f'| {r.baseline} | {r.dimension} | {r.mse:.4f} | {r.rmse:.4f} | '
                 f'{r.mae:.4f} | {r.r2:.4f} |')
  return '\n'.join(lines) + '\n'


def run(config: ml_collections.ConfigDict, workdir: str) -> pd.DataFrame:
  """Writes `<workdir>/report/baselines.csv` and `baselines.md`; returns the table."""
  from data_prep import prepare
  songs, _, _ = prepare.read_songs(config)
  train = [s for s in songs if s.split == 'train']
  test = [s for s in songs if s.split == 'test']
  if not train or not test:
    raise ValueError(f'baselines need training and test songs; got {len(train)} and '
                     f'{len(test)}')
  label = lambda ss: np.array([[s.valence, s.arousal] for s in ss])  # noqa: E731
  preds = predict(label(train), np.array([s.quadrant for s in train]),
                  np.array([s.quadrant for s in test]), config.seed)
  df = table(label(test), preds)
  folder = os.path.join(workdir, 'report')
  os.makedirs(folder, exist_ok=True)
  df.to_csv(os.path.join(folder, 'baselines.csv'), index=False, float_format='%.6f')
  with open(os.path.join(folder, 'baselines.md'), 'w') as f:
    f.write(markdown(df, len(train), len(test)))
  return df

"""Label-only baselines on the songs the models train and are tested on.

  random           uniform 0..1 per song and dimension (seeded; songs in id order)
  mean             the training-set mean of each dimension
  quadrant_centre  the training-set mean of the song's *true* quadrant: how much of a
                   regression score the quadrant alone explains (MERGE was curated for
                   quadrant classification); the true quadrant follows
                   `config.eval.quadrant_source`

The songs are those of the prepared dataset (`data_prep.prepare`, run or reused):
songs that preparation skips (missing, unreadable or silent audio, missing lyrics) are
in neither the models' tables nor these; the report says how many and where they are
listed. Only labels are read from the prepared data.
"""

from __future__ import annotations

import dataclasses
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
  centres = metrics.quadrant_centres(train_y, train_q)
  for q in range(4):
    if not np.any(np.asarray(train_q) == q):
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


@dataclasses.dataclass(frozen=True)
class Baselines:
  """The baselines' table and the songs it was computed on."""
  table: pd.DataFrame  # COLUMNS, one row per baseline and dimension (test split).
  test_ids: tuple[str, ...]  # The test songs, sorted.
  n_train: int
  n_skipped: int  # Input rows preparation skipped (in no split).
  prep_report: str  # Where those are listed.
  quadrant_source: str

  @property
  def n_test(self) -> int:
    return len(self.test_ids)

  def songs_line(self) -> str:
    """One sentence on the songs, for reports."""
    line = (f'{self.n_train} training and {self.n_test} test songs: the prepared songs '
            'the models train and are tested on')
    if self.n_skipped:
      line += (f'; {self.n_skipped} input row(s) skipped by preparation are in neither '
               f'(listed in {self.prep_report})')
    return line + '.'


def compute(config: ml_collections.ConfigDict) -> Baselines:
  """The baselines on the configured dataset's prepared songs (prepared if needed)."""
  from data_prep import prepare
  from mer_jax import input_pipeline
  builder = prepare.prepare(config)
  names = input_pipeline.split_names(builder)
  if 'train' not in names or 'test' not in names:
    raise ValueError(f'baselines need training and test songs; {builder.data_dir} has '
                     f'the splits {names}')
  keys = ('song_id', 'valence', 'arousal', 'quadrant', 'official_quadrant')
  train, test = (input_pipeline.read_split(builder, s, keys) for s in ('train', 'test'))
  order = np.argsort(test['song_id'], kind='stable')  # The random draws follow song ids.
  test = {k: v[order] for k, v in test.items()}
  source = config.eval.quadrant_source
  quad = lambda c: metrics.true_quadrants(c['quadrant'], c['official_quadrant'],  # noqa: E731
                                          source)
  label = lambda c: np.stack([c['valence'], c['arousal']], axis=1)  # noqa: E731
  preds = predict(label(train), quad(train), quad(test), config.seed)
  meta = builder.info.metadata
  return Baselines(table=table(label(test), preds),
                   test_ids=tuple(i.decode() for i in test['song_id']),
                   n_train=len(train['song_id']), n_skipped=int(meta['num_skipped']),
                   prep_report=os.path.join(builder.data_dir, 'prep_report.csv'),
                   quadrant_source=source)


def markdown(b: Baselines) -> str:
  lines = ['# Baselines', '', b.songs_line(),
           'Statistics from the training split, scored on the test split; valence and '
           'arousal on 0..1; true quadrant of the quadrant centres: '
           f'{metrics.QUADRANT_SOURCE_TEXT[b.quadrant_source]}.',
           '',
           '| baseline | dimension | MSE ↓ | RMSE ↓ | MAE ↓ | R² ↑ |',
           '|---|---|---:|---:|---:|---:|']
  for r in b.table.itertuples():
    lines.append(f'| {r.baseline} | {r.dimension} | {r.mse:.4f} | {r.rmse:.4f} | '
                 f'{r.mae:.4f} | {r.r2:.4f} |')
  return '\n'.join(lines) + '\n'


def write(b: Baselines, folder: str) -> None:
  """`<folder>/baselines.csv` and `baselines.md`."""
  os.makedirs(folder, exist_ok=True)
  b.table.to_csv(os.path.join(folder, 'baselines.csv'), index=False, float_format='%.6f')
  with open(os.path.join(folder, 'baselines.md'), 'w') as f:
    f.write(markdown(b))

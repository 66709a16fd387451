"""End to end on the tiny synthetic dataset: loss falls, report files are complete."""

import math
import os

import numpy as np
import pandas as pd

from mer_jax import train
from tests.conftest import tiny_config


def test_train_and_evaluate_end_to_end(tiny_prepared, tiny_root, tmp_path):
  config = tiny_config(tiny_root)
  config.train.num_epochs = 8
  workdir = str(tmp_path / 'run')
  results = train.train_and_evaluate(config, workdir)
  report = os.path.join(workdir, 'report')
  for f in ('metrics.csv', 'metrics.md', 'predictions.csv', 'history.csv',
            'pred_vs_true.png', 'va_distribution.png', 'learning_curves.png'):
    assert os.path.getsize(os.path.join(report, f)) > 0, f
  hist = pd.read_csv(os.path.join(report, 'history.csv'))
  assert len(hist) == 8
  assert hist.train_loss.iloc[-1] < 0.7 * hist.train_loss.iloc[0]
  m = pd.read_csv(os.path.join(report, 'metrics.csv'))
  assert set(m.split) == {'train', 'validation', 'test'}
  assert set(m.dimension) == {'valence', 'arousal'}
  assert set(m.metric) == {'mse', 'rmse', 'mae', 'r2'}
  assert len(m) == 3 * 2 * 4 and np.isfinite(m.value).all()
  preds = pd.read_csv(os.path.join(report, 'predictions.csv'))
  assert len(preds) == 40 and preds.song_id.is_unique
  for d in ('valence', 'arousal'):
    assert preds[f'{d}_pred'].between(0, 1).all()
  # The returned numbers are the ones in the table.
  row = m[(m.split == 'test') & (m.dimension == 'arousal') & (m.metric == 'rmse')]
  assert math.isclose(results['test']['arousal']['rmse'], row.value.iloc[0], rel_tol=1e-5)
  test = preds[preds.split == 'test']
  assert math.isclose(results['test']['valence']['mae'],
                      np.mean(np.abs(test.valence_pred - test.valence_true)), rel_tol=1e-4)

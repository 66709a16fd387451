"""Cross-dataset matrix on two synthetic datasets."""

import os

import numpy as np
import pandas as pd
import pytest

from mer_jax import cross, input_pipeline
from tests.conftest import tiny_config


def test_db_offset_rereferences_and_floors(tiny_prepared):
  _, builder = tiny_prepared
  plain = next(iter(input_pipeline.load_split(builder, 'test', None).batch(4)))
  shifted = next(iter(input_pipeline.load_split(builder, 'test', None, -7.5).batch(4)))
  np.testing.assert_allclose(shifted['mel'].numpy(),
                             np.maximum(plain['mel'].numpy() - 7.5, -80.0), atol=1e-6)


def test_cross_matrix(tiny_prepared, tiny_root, tmp_path):
  config = tiny_config(tiny_root)
  config.job = 'cross'
  config.train.num_epochs = 2
  config.cross.datasets = ('tiny', 'demo')
  config.cross.roots = (os.path.join(tiny_root, 'songs'), str(tmp_path / 'demo_songs'))
  df = cross.run(config, str(tmp_path))
  assert len(df) == 2 * 2 * 2 * 3 and np.isfinite(df.value).all()
  assert set(df.train) == set(df.test) == {'tiny', 'demo'}
  # The diagonal is each model on its own test split: the run's own report.
  for name in ('tiny', 'demo'):
    own = pd.read_csv(tmp_path / 'cross' / name / 'report' / 'metrics.csv')
    for d in ('valence', 'arousal'):
      want = own[(own.split == 'test') & (own.dimension == d) & (own.metric == 'rmse')]
      got = df[(df.train == name) & (df.test == name) & (df.dimension == d)
               & (df.metric == 'rmse')]
      assert got.value.iloc[0] == pytest.approx(want.value.iloc[0], rel=1e-4)
  md = (tmp_path / 'report' / 'cross_dataset.md').read_text()
  assert '| train \\ test | tiny | demo |' in md

"""mer_jax/report.py: the label-distribution figure is drawn once per set of labels."""

import matplotlib.image
import numpy as np
import pandas as pd

from mer_jax import report


def _frame(seed: int, n: int = 30) -> pd.DataFrame:
  rng = np.random.default_rng(seed)
  v, a = rng.uniform(size=n), rng.uniform(size=n)
  quadrant = np.where(v >= 0.5, np.where(a >= 0.5, 'Q1', 'Q4'),
                      np.where(a >= 0.5, 'Q2', 'Q3'))
  return pd.DataFrame({'song_id': [f's{i}' for i in range(n)],
                       'split': rng.choice(['train', 'validation', 'test'], n),
                       'quadrant': quadrant, 'valence_true': v, 'arousal_true': a,
                       'valence_pred': rng.uniform(size=n), 'arousal_pred': rng.uniform(size=n)})


def test_distribution_figure_depends_on_the_labels_only(tmp_path):
  df = _frame(0)
  report._distribution_png.cache_clear()
  report.plot_distribution(df, str(tmp_path / 'a.png'))
  # Another run on the same songs (other predictions): the same picture, from memory.
  other = df.assign(valence_pred=1 - df.valence_pred)
  report.plot_distribution(other, str(tmp_path / 'b.png'))
  assert report._distribution_png.cache_info().hits == 1
  a = (tmp_path / 'a.png').read_bytes()
  assert (tmp_path / 'b.png').read_bytes() == a
  # Drawn afresh it is the same file; other labels draw another picture.
  report._distribution_png.cache_clear()
  report.plot_distribution(df, str(tmp_path / 'c.png'))
  assert (tmp_path / 'c.png').read_bytes() == a
  moved = df.assign(valence_true=df.valence_true.to_numpy()[::-1])
  report.plot_distribution(moved, str(tmp_path / 'd.png'))
  assert (tmp_path / 'd.png').read_bytes() != a
  # One row of three panels per split, 12 x 3.4 inches each at 100 dpi.
  assert matplotlib.image.imread(str(tmp_path / 'a.png')).shape[:2] == (3 * 340, 1200)

"""Experiment 1 baselines (random, mean, quadrant-centre) on MERGE, on the prepared songs
(the models' songs: the release is prepared first if needed; only labels are used).

    python launch.py --config=configs/exp1_baselines.py --config.data.root=<dir> --workdir=<dir>
"""

from configs import exp1


def get_config():
  config = exp1.get_config()
  config.job = 'baselines'
  return config

"""Experiment 1 baselines (random, mean, quadrant-centre) on MERGE: labels and splits only.

    python launch.py --config=configs/exp1_baselines.py --config.data.root=<dir> --workdir=<dir>
"""

from configs import exp1


def get_config():
  config = exp1.get_config()
  config.job = 'baselines'
  return config

"""Experiment 2, cross-dataset: an audio-only Model 4 trained on each of MERGE, PMEmo and
DEAM and tested on every one's test split.

    python launch.py --config=configs/exp2_cross.py --workdir=runs/exp2_cross \
      --config.cross.roots="('/data/MERGE', '/data', '/data/DEAM')"
"""

from configs import default


def get_config():
  config = default.get_config()
  config.job = 'cross'
  config.model.modality = 'audio'
  config.cross.datasets = ('exp1', 'exp2_pmemo_audio', 'exp2_deam')
  config.cross.roots = ('data/MERGE', 'data', 'data/DEAM')
  return config

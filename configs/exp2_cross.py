"""Experiment 2, cross-dataset: an audio-only Model 4 trained on each of MERGE, PMEmo and
DEAM and tested on every one's test split.

    python launch.py --config=configs/exp2_cross.py --workdir=runs/exp2_cross \
      --config.cross.roots="('/data/MERGE', '/data', '/data/DEAM')"
"""

import ml_collections

from configs import default, exp1, exp2_deam, exp2_pmemo_audio


def dataset(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """What the cross-dataset job takes from a dataset's config: its data section and
  its window rule."""
  return ml_collections.ConfigDict({'data': config.data.to_dict(),
                                    'crop': config.audio.crop})


def get_config():
  config = default.get_config()
  config.job = 'cross'
  config.model.modality = 'audio'
  sets = (('exp1', exp1), ('exp2_pmemo_audio', exp2_pmemo_audio), ('exp2_deam', exp2_deam))
  config.cross.names = tuple(name for name, _ in sets)
  config.cross.datasets = ml_collections.ConfigDict(
      {name: dataset(module.get_config()) for name, module in sets})
  config.cross.roots = ('data/MERGE', 'data', 'data/DEAM')
  return config

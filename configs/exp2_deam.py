"""Experiment 2 on DEAM (audio-only): labels mapped from 1..9 to 0..1 as (x - 1) / 8;
the centred 30 s window of every clip or song. The audio towers of Models 1-4 x 3
seeds, baselines, tables and figures.

    python launch.py --config=configs/exp2_deam.py --config.data.root=/path/to/DEAM \
      --workdir=runs/exp2_deam
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'deam'
  config.data.source = 'deam'
  config.data.root = 'data/DEAM'
  config.data.lyrics = False
  config.audio.crop = 'center'
  config.model.modality = 'audio'
  config.job = 'sweep'
  config.sweep.models = ('model1', 'model2', 'model3', 'model4')
  config.sweep.modalities = ('audio',)
  config.sweep.ablation_model = ''
  return config

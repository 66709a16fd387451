"""Experiment 2 on PMEmo2019, audio-only: every labelled song (same seeded split);
the audio towers of Models 1-4 x 3 seeds, baselines, tables and figures."""

from configs import exp2_pmemo


def get_config():
  config = exp2_pmemo.get_config()
  config.data.name = 'pmemo_audio'
  config.data.lyrics = False
  config.model.modality = 'audio'
  config.sweep.models = ('model1', 'model2', 'model3', 'model4')
  config.sweep.modalities = ('audio',)
  config.sweep.ablation_model = ''
  return config

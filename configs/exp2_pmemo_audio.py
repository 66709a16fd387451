"""Experiment 2 on PMEmo2019, audio-only: every labelled song (same seeded split)."""

from configs import exp2_pmemo


def get_config():
  config = exp2_pmemo.get_config()
  config.data.name = 'pmemo_audio'
  config.data.lyrics = False
  config.model.modality = 'audio'
  return config

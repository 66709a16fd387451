"""Experiment 2 on DEAM (audio-only) with the pretrained musicnn front-end: frozen
musicnn embeddings of the centred 30 s window, the fusion head trained on them alone,
3 seeds, baselines.

    python launch.py --config=configs/exp2_deam_musicnn.py \
      --config.data.root=/path/to/DEAM --workdir=runs/exp2_deam_musicnn
"""

from configs import exp2_deam


def get_config():
  config = exp2_deam.get_config()
  config.model.audio_frontend = 'musicnn'
  config.sweep.models = ('musicnn',)
  return config

"""Experiment 2 on PMEmo2019 (bimodal) with the pretrained musicnn front-end: frozen
musicnn song embeddings + the frozen MiniLM lyrics tower, 3 seeds, its modality
ablation (musicnn alone, lyrics alone), baselines.

    python launch.py --config=configs/exp2_pmemo_musicnn.py \
      --config.data.root=/path/to/folder --workdir=runs/exp2_pmemo_musicnn
"""

from configs import exp2_pmemo


def get_config():
  config = exp2_pmemo.get_config()
  config.model.audio_frontend = 'musicnn'
  config.sweep.models = ('musicnn',)
  config.sweep.ablation_model = 'musicnn'
  return config

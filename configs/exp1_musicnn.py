"""Experiment 1 with the pretrained musicnn front-end beside the thesis's models: the
MERGE Bimodal Complete sweep of configs/exp1.py with a "musicnn + BERT" row (frozen
musicnn song embeddings + the frozen MiniLM lyrics tower; `mer_jax.variants`'
'musicnn'), each row over 3 seeds, the best model's modality ablation, baselines.

    python launch.py --config=configs/exp1_musicnn.py --config.data.root=/path/to/MERGE \
      --workdir=runs/exp1

Sharing runs/exp1 with configs/exp1.py reuses its finished Models 1-5 runs: only the
musicnn rows train. The results tables name each row's audio front-end. Fine-tuned
musicnn: add 'musicnn_ft' to config.sweep.models (slow on a CPU).
"""

from configs import exp1


def get_config():
  config = exp1.get_config()
  config.sweep.models = tuple(config.sweep.models) + ('musicnn',)
  return config

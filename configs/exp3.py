"""Experiment 3 on MERGE: Siamese congruence vs the Exp 1 model's error.

    python launch.py --config=configs/exp3.py --workdir=runs/exp3 \
        --config.data.root=/data/MERGE_Bimodal_Complete \
        --config.exp3.exp1_workdir=runs/exp1/runs/model4-bimodal-s0

With exp1_workdir empty, the fusion model (this config's Model 4) is trained first.
"""

from configs import exp1


def get_config():
  config = exp1.get_config()
  config.job = 'exp3'
  config.exp3.exp1_workdir = ''
  return config

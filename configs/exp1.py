"""Experiment 1: MERGE Bimodal Complete, official 70-15-15 split. Trains Models 1-5
over 3 seeds and the best model's modality ablation, runs the baselines and writes the tables
and figures to <workdir>/report/.

    python launch.py --config=configs/exp1.py --config.data.root=/path/to/MERGE --workdir=runs/exp1

`config.data.root` is the folder holding the unzipped `MERGE_Bimodal_Complete/`.
One model alone: `--config.job=train` (Model 4).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'merge_bimodal_complete'
  config.data.source = 'merge'
  config.data.root = 'data/MERGE'
  config.data.merge_variant = 'bimodal_complete'
  config.data.split = '70_15_15'  # Or '40_30_30'.
  config.job = 'sweep'
  return config

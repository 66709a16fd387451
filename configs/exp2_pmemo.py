"""Experiment 2 on PMEmo2019, bimodal: the songs that have both chorus audio and lyrics.
Same protocol as Experiment 1 (Models 1-5 x 3 seeds, the best model's modality ablation,
baselines, tables and figures).

    python launch.py --config=configs/exp2_pmemo.py --config.data.root=/path/to/folder \
      --workdir=runs/exp2_pmemo

`config.data.root` holds the unzipped `PMEmo2019/`. The seeded split (stratified by
quadrant) is written once under `<data_dir>/splits/`; songs without lyrics are listed in
the prep report.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'pmemo_bimodal'
  config.data.source = 'pmemo'
  config.data.root = 'data'
  config.data.lyrics = True
  config.job = 'sweep'
  return config

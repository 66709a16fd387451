"""Experiment 2 on PMEmo2019, bimodal: the songs that have both chorus audio and lyrics.

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
  return config

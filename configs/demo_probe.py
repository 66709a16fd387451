"""Demo: the linear probe (MARBLE's protocol) of the tower named by
`--config.model.init_audio_from` (a pretraining or a supervised run; unset: a randomly
initialised demo tower, the baseline), on the synthetic demo, seeds 0, 1, 2:

    python launch.py --config=configs/demo_probe.py --workdir=runs/demo_probe \\
        --config.model.init_audio_from=runs/demo_pretrain
    # Several towers in one table:
    python launch.py --config=configs/demo_probe.py --workdir=runs/demo_probe_all \\
        --config.probe.towers="('random','runs/demo_pretrain','runs/demo','musicnn')"
"""

from configs import demo


def get_config():
  config = demo.get_config()  # The demo's data and tower settings.
  config.job = 'probe'
  config.probe.head = 'linear'
  config.sweep.seeds = (0, 1, 2)
  # The head trains on cached embeddings: epochs cost milliseconds.
  config.train.num_epochs = 100
  config.train.learning_rate = 3e-3
  config.train.early_stopping_patience = 15
  return config

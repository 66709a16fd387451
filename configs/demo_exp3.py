"""Experiment 3 on the demo data, end to end in minutes on a CPU: the demo fusion
model, the Siamese model, the congruence-gated fusion and the analysis.

    python launch.py --config=configs/demo_exp3.py --workdir=runs/demo_exp3
"""

from configs import demo


def get_config():
  config = demo.get_config()
  config.job = 'exp3'
  config.siamese.embed_dim = 32
  config.siamese.proj_hidden = 64
  config.exp3.siamese_batch_size = 32
  config.exp3.siamese_learning_rate = 1e-3
  config.exp3.siamese_num_epochs = 20
  return config

"""Model 1: lightweight VGG. 4 blocks of [3x3 conv -> ReLU -> 2x2 max-pool], channels
64/128/256/512, global average pool, classifier 512 -> 256 (ReLU) -> 64; no BatchNorm,
no dropout, no attention; a fixed number of epochs at a constant learning rate."""

from configs import default


def apply(config):
  """Turns any config into Model 1 (sizes such as widths are left as they are)."""
  config.model.convs_per_block = 1
  config.model.batch_norm = False
  config.model.dropout = 0.0
  config.model.attention = 'none'
  config.text.trainable = False
  config.train.schedule = 'constant'
  config.train.early_stopping = False
  return config


def get_config():
  return apply(default.get_config())

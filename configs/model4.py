"""Model 4 ("true VGG", the shared default): two 3x3 conv + BN + ReLU per block,
classifier with dropout 0.5 before the first linear layer and before an attention gate
on the 256-d features, then 256 -> 64. Frozen text tower."""

from configs import default, model2


def apply(config):
  model2.apply(config)
  config.model.convs_per_block = 2
  config.model.dropout = 0.5
  config.model.attention = 'hidden'
  return config


def get_config():
  return apply(default.get_config())

"""Model 3: Model 2 + feature-wise attention on the final 64-d audio features
(64 -> 16 ReLU -> 64 sigmoid, multiplied onto the features)."""

from configs import default, model2


def apply(config):
  model2.apply(config)
  config.model.attention = 'output'
  return config


def get_config():
  return apply(default.get_config())

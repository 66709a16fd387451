"""Model 3: Model 2 + feature-wise attention on the final 64-d audio features
(64 -> 16 ReLU -> 64 sigmoid, multiplied onto the features)."""

from configs import model2


def get_config():
  config = model2.get_config()
  config.model.attention = 'output'
  return config

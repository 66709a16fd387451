"""Model 1: lightweight VGG. 4 blocks of [3x3 conv -> ReLU -> 2x2 max-pool], channels
64/128/256/512, global average pool, classifier 512 -> 256 (ReLU) -> 64; no BatchNorm,
no dropout, no attention; a fixed number of epochs at a constant learning rate.

The fields it sets are mer_jax.variants.VARIANTS['model1'].
"""

from configs import default
from mer_jax import variants


def get_config():
  return variants.apply(default.get_config(), 'model1')

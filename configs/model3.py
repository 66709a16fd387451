"""Model 3: Model 2 + feature-wise attention on the final 64-d audio features
(64 -> 16 ReLU -> 64 sigmoid, multiplied onto the features).

The fields it sets are mer_jax.variants.VARIANTS['model3'].
"""

from configs import default
from mer_jax import variants


def get_config():
  return variants.apply(default.get_config(), 'model3')

"""Model 4 ("true VGG", the shared default): two 3x3 conv + BN + ReLU per block,
classifier with dropout 0.5 before the first linear layer and before an attention gate
on the 256-d features, then 256 -> 64. Frozen text tower.

The fields it sets are mer_jax.variants.VARIANTS['model4'].
"""

from configs import default
from mer_jax import variants


def get_config():
  return variants.apply(default.get_config(), 'model4')

"""Model 2: Model 1 + BatchNorm after every conv; reduce-on-plateau learning rate and
early stopping from this model on.

The fields it sets are mer_jax.variants.VARIANTS['model2'].
"""

from configs import default
from mer_jax import variants


def get_config():
  return variants.apply(default.get_config(), 'model2')

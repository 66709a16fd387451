"""Model 5: Model 3 + the BERT lyrics tower unfrozen (fine-tuned with its own learning
rate and warm-up; gradients clipped by global norm).

The fields it sets are mer_jax.variants.VARIANTS['model5'].
"""

from configs import default
from mer_jax import variants


def get_config():
  return variants.apply(default.get_config(), 'model5')

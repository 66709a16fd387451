"""Training losses."""

import jax
import jax.numpy as jnp


def mse(pred: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Mean squared error over examples and dimensions; [batch, dims] -> scalar.

  `mask` [batch] (1 = real example) excludes padding; the mean is over real examples.
  """
  sq = jnp.square(pred - target).mean(axis=-1)
  if mask is None:
    return sq.mean()
  return (sq * mask).sum() / jnp.maximum(mask.sum(), 1.0)

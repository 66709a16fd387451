"""2x2 max-pooling with its custom gradient against flax's nn.max_pool (XLA's
select-and-scatter), ties included."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mer_jax import pooling


def _flax_pool(x):
  return nn.max_pool(x, (2, 2), strides=(2, 2))


@pytest.mark.parametrize('shape', [(2, 8, 12, 3), (3, 9, 13, 5), (1, 33, 7, 2)])
@pytest.mark.parametrize('ties', [False, True])
def test_max_pool_2x2_values_and_gradients_equal_flax(shape, ties):
  rng = np.random.default_rng()
  x = rng.normal(size=shape).astype(np.float32)
  if ties:  # Few distinct values: many windows hold their maximum twice or more.
    x = np.round(x * 2) / 2
  x = jnp.asarray(x)
  dy = jnp.asarray(rng.normal(size=_flax_pool(x).shape), jnp.float32)
  np.testing.assert_array_equal(pooling.max_pool_2x2(x), _flax_pool(x))
  for f in (lambda v: v, nn.relu):  # Raw, and after ReLU as in the VGG.
    want = jax.vjp(lambda v: _flax_pool(f(v)), x)[1](dy)[0]
    got = jax.jit(lambda v: jax.vjp(lambda u: pooling.max_pool_2x2(f(u)), v)[1](dy)[0])(x)
    np.testing.assert_array_equal(got, want)
  # Gradients go to exactly one element per window.
  g = jax.grad(lambda v: jnp.sum(pooling.max_pool_2x2(v)))(x)
  assert float(g.sum()) == np.prod(dy.shape)

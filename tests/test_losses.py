"""Losses against independent numpy implementations on fresh random embeddings."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from mer_jax import losses


def _unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _np_info_nce(a, t, temperature):
  logits = (a @ t.T) / temperature
  a2l = special.logsumexp(logits, axis=1) - np.diag(logits)
  l2a = special.logsumexp(logits, axis=0) - np.diag(logits)
  return 0.5 * (a2l.mean() + l2a.mean()), logits


def _np_info_nce_grads(a, t, temperature):
  """Analytic gradients: dL/dlogits = (softmax_rows - I) / 2n + (softmax_cols - I) / 2n."""
  _, logits = _np_info_nce(a, t, temperature)
  n = len(a)
  rows = special.softmax(logits, axis=1)
  cols = special.softmax(logits, axis=0)
  d_logits = (rows - np.eye(n)) / (2 * n) + (cols - np.eye(n)) / (2 * n)
  d_a = d_logits @ t / temperature
  d_temperature = np.sum(d_logits * (a @ t.T)) * (-1 / temperature ** 2)
  return d_a, d_temperature


@pytest.mark.parametrize('n,dim', [(2, 3), (7, 16), (32, 64)])
def test_info_nce_and_its_gradients_match_numpy(n, dim):
  rng = np.random.default_rng()
  a, t = _unit(rng.normal(size=(n, dim))), _unit(rng.normal(size=(n, dim)))
  temperature = rng.uniform(0.02, 1.0)

  def loss(a, temp):
    return losses.info_nce(a, jnp.asarray(t, jnp.float32), 1.0 / temp)

  value, (g_a, g_temp) = jax.value_and_grad(loss, argnums=(0, 1))(
      jnp.asarray(a, jnp.float32), jnp.float32(temperature))
  want, _ = _np_info_nce(a, t, temperature)
  want_a, want_temp = _np_info_nce_grads(a, t, temperature)
  np.testing.assert_allclose(float(value), want, rtol=2e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(g_a), want_a, rtol=1e-3, atol=1e-5)
  np.testing.assert_allclose(float(g_temp), want_temp, rtol=1e-3, atol=1e-5)


def test_info_nce_prefers_matched_pairs():
  rng = np.random.default_rng()
  a = _unit(rng.normal(size=(8, 16)))
  shuffled = a[np.roll(np.arange(8), 1)]
  aligned = float(losses.info_nce(jnp.asarray(a), jnp.asarray(a), 10.0))
  wrong = float(losses.info_nce(jnp.asarray(a), jnp.asarray(shuffled), 10.0))
  assert aligned < np.log(8) < wrong


def _np_pairwise(a, t, neg, margin):
  total = 0.0
  for i in range(len(a)):
    d_pos = np.linalg.norm(a[i] - t[i])
    d_neg = np.linalg.norm(a[i] - t[neg[i]])
    total += 0.5 * d_pos ** 2 + 0.5 * max(0.0, margin - d_neg) ** 2
  return total / len(a)


@pytest.mark.parametrize('margin', [0.5, 1.0, 1.8])
def test_pairwise_margin_matches_numpy(margin):
  rng = np.random.default_rng()
  n = 12
  a, t = _unit(rng.normal(size=(n, 8))), _unit(rng.normal(size=(n, 8)))
  neg = (np.arange(n) + rng.integers(1, n, n)) % n
  got = losses.pairwise_margin(jnp.asarray(a, jnp.float32), jnp.asarray(t, jnp.float32),
                               jnp.asarray(neg), margin)
  np.testing.assert_allclose(float(got), _np_pairwise(a, t, neg, margin), rtol=1e-5)
  # Finite gradients also for identical embeddings (distance 0).
  g = jax.grad(lambda x: losses.pairwise_margin(x, x, jnp.asarray(neg), margin))(
      jnp.asarray(a[[0] * n], jnp.float32))
  assert np.all(np.isfinite(np.asarray(g)))


def test_sample_negatives_random_never_picks_itself_and_covers_the_batch():
  n = 6
  quadrant = jnp.zeros(n, jnp.int32)
  picks = np.stack([np.asarray(losses.sample_negatives(jax.random.key(i), quadrant))
                    for i in range(300)])
  assert not np.any(picks == np.arange(n))
  for i in range(n):  # Roughly uniform over the other n - 1 songs.
    counts = np.bincount(picks[:, i], minlength=n)
    assert counts[i] == 0 and counts.sum() == 300
    assert np.all(counts[np.arange(n) != i] > 300 / (n - 1) / 2)


def test_sample_negatives_other_quadrant():
  rng = np.random.default_rng()
  quadrant = rng.integers(0, 4, 16)
  quadrant[:3] = 0
  quadrant[3] = 1  # At least two quadrants present.
  for seed in range(20):
    neg = np.asarray(losses.sample_negatives(jax.random.key(seed),
                                             jnp.asarray(quadrant, jnp.int32),
                                             'other_quadrant'))
    assert np.all(quadrant[neg] != quadrant)
  # A batch of one quadrant falls back to any other song.
  same = np.asarray(losses.sample_negatives(jax.random.key(0), jnp.zeros(5, jnp.int32),
                                            'other_quadrant'))
  assert not np.any(same == np.arange(5))
  with pytest.raises(ValueError, match='negative sampler'):
    losses.sample_negatives(jax.random.key(0), jnp.zeros(5, jnp.int32), 'hard')


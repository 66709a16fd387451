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


def _np_nt_xent(z1, z2, temperature, mask):
  """SimCLR's NT-Xent by its definition, view by view, and its gradient worked out by
  hand: with G = (softmax over each real anchor's candidates - one-hot of its positive) /
  number of real anchors, dL/dZ = (G + G^T) Z / temperature for Z = [z1; z2]."""
  n = len(z1)
  z = np.concatenate([z1, z2]).astype(np.float64)
  real = np.concatenate([mask, mask]) > 0
  s = z @ z.T / temperature
  total, g = 0.0, np.zeros((2 * n, 2 * n))
  for i in range(2 * n):
    if not real[i]:
      continue
    pos = (i + n) % (2 * n)
    cand = [j for j in range(2 * n) if j != i and real[j]]
    m = max(s[i, j] for j in cand)
    lse = m + np.log(sum(np.exp(s[i, j] - m) for j in cand))
    total += lse - s[i, pos]
    for j in cand:
      g[i, j] = np.exp(s[i, j] - lse)
    g[i, pos] -= 1.0
  r = real.sum()
  g /= r
  dz = (g + g.T) @ z / temperature
  return total / r, dz[:n], dz[n:]


@pytest.mark.parametrize('n,dim,pad', [(6, 8, 0), (16, 32, 0), (10, 16, 3)])
def test_nt_xent_and_its_gradients_match_numpy(n, dim, pad):
  rng = np.random.default_rng()
  z1, z2 = _unit(rng.normal(size=(n, dim))), _unit(rng.normal(size=(n, dim)))
  mask = np.ones(n, np.float32)
  mask[n - pad:] = 0  # Padded songs: neither anchors nor negatives.
  temperature = float(rng.uniform(0.05, 1.0))
  value, (g1, g2) = jax.value_and_grad(
      lambda a, b: losses.nt_xent(a, b, temperature, jnp.asarray(mask)), argnums=(0, 1))(
          jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32))
  want, want1, want2 = _np_nt_xent(z1, z2, temperature, mask)
  np.testing.assert_allclose(float(value), want, rtol=2e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(g1), want1, rtol=1e-3, atol=1e-5)
  np.testing.assert_allclose(np.asarray(g2), want2, rtol=1e-3, atol=1e-5)
  if not pad:  # Without a mask: the same as all real.
    np.testing.assert_allclose(float(losses.nt_xent(z1, z2, temperature)), want,
                               rtol=2e-5, atol=1e-5)


def test_nt_xent_prefers_matching_views():
  rng = np.random.default_rng()
  z = _unit(rng.normal(size=(8, 16)))
  aligned = float(losses.nt_xent(jnp.asarray(z), jnp.asarray(z), 0.1))
  wrong = float(losses.nt_xent(jnp.asarray(z), jnp.asarray(z[np.roll(np.arange(8), 1)]),
                               0.1))
  assert aligned < np.log(15) < wrong


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



# Gaussian head: mean + log-variance.

def _gaussian_batch(rng, n=16, dims=2):
  """float64 (mu, log_var, target) [n, dims] and a mask [n] with real and padded rows."""
  mu = rng.uniform(0, 1, (n, dims))
  log_var = rng.uniform(-5, 1, (n, dims))
  target = np.clip(mu + rng.normal(0, 0.3, (n, dims)), 0, 1)
  mask = (rng.uniform(size=n) > 0.4).astype(np.float64)
  mask[:2] = [1, 0]
  return mu, log_var, target, mask


def _f32(*xs):
  return [jnp.asarray(x, jnp.float32) for x in xs]


def test_gaussian_nll_matches_torch_and_scipy():
  import torch
  from scipy import stats
  rng = np.random.default_rng(101)
  mu, log_var, y, mask = _gaussian_batch(rng)
  var = np.exp(log_var)

  def torch_nll(rows):
    return float(torch.nn.functional.gaussian_nll_loss(
        torch.from_numpy(mu[rows]), torch.from_numpy(y[rows]), torch.from_numpy(var[rows]),
        full=True, eps=1e-12, reduction='mean'))

  got = float(losses.gaussian_nll(*_f32(mu, log_var, y)))
  everything = np.ones(len(mu), bool)
  assert got == pytest.approx(torch_nll(everything), rel=1e-5)
  assert got == pytest.approx(-np.mean(stats.norm.logpdf(y, mu, np.sqrt(var))), rel=1e-5)
  kept = mask > 0
  got = float(losses.gaussian_nll(*_f32(mu, log_var, y, mask)))
  assert got == pytest.approx(torch_nll(kept), rel=1e-5)
  assert got == pytest.approx(
      -np.mean(stats.norm.logpdf(y[kept], mu[kept], np.sqrt(var[kept]))), rel=1e-5)


def test_gaussian_nll_gradients_match_torch_autograd():
  """d/dlog_var by the chain rule from torch's d/dvar: dL/dlog_var = dL/dvar * var."""
  import torch
  rng = np.random.default_rng(102)
  mu, log_var, y, mask = _gaussian_batch(rng)
  kept = mask > 0
  t_mu = torch.tensor(mu[kept], requires_grad=True)
  t_var = torch.tensor(np.exp(log_var[kept]), requires_grad=True)
  torch.nn.functional.gaussian_nll_loss(t_mu, torch.from_numpy(y[kept]), t_var, full=True,
                                        eps=1e-12).backward()
  want_mu, want_lv = np.zeros_like(mu), np.zeros_like(mu)
  want_mu[kept] = t_mu.grad.numpy()
  want_lv[kept] = t_var.grad.numpy() * np.exp(log_var[kept])
  g_mu, g_lv = jax.grad(losses.gaussian_nll, argnums=(0, 1))(*_f32(mu, log_var, y, mask))
  np.testing.assert_allclose(np.asarray(g_mu), want_mu, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(np.asarray(g_lv), want_lv, rtol=1e-4, atol=1e-7)


def _np_beta_nll_grads(mu, log_var, y, mask, beta):
  """By hand: loss = sum_i w_i l_i / count, w = var**beta held constant, l the
  per-element NLL, count = dims * real examples. dl/dmu = (mu - y) / var,
  dl/dlog_var = 0.5 * (1 - (y - mu)^2 / var)."""
  var = np.exp(log_var)
  w = var ** beta * mask[:, None] / (mask.sum() * mu.shape[1])
  return (mu - y) / var * w, 0.5 * (1 - (y - mu) ** 2 / var) * w


@pytest.mark.parametrize('beta', [0.0, 0.5, 1.0])
def test_beta_nll_value_and_stop_gradient_match_numpy(beta):
  from scipy import stats
  rng = np.random.default_rng(103 + int(10 * beta))
  mu, log_var, y, mask = _gaussian_batch(rng)
  var = np.exp(log_var)
  kept = mask > 0
  per = -stats.norm.logpdf(y, mu, np.sqrt(var)) * var ** beta
  args = _f32(mu, log_var, y)
  got = float(losses.beta_nll(*args, beta))
  assert got == pytest.approx(per.mean(), rel=1e-5)
  got = float(losses.beta_nll(*args, beta, jnp.asarray(mask, jnp.float32)))
  assert got == pytest.approx(per[kept].mean(), rel=1e-5)
  g_mu, g_lv = jax.grad(losses.beta_nll, argnums=(0, 1))(
      *args, beta, jnp.asarray(mask, jnp.float32))
  want_mu, want_lv = _np_beta_nll_grads(mu, log_var, y, mask, beta)
  np.testing.assert_allclose(np.asarray(g_mu), want_mu, rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(np.asarray(g_lv), want_lv, rtol=1e-4, atol=1e-7)
  if beta == 0.0:  # The plain NLL, value and gradients.
    assert got == pytest.approx(float(losses.gaussian_nll(*args, jnp.asarray(mask))),
                                rel=1e-6)
    g0 = jax.grad(losses.gaussian_nll, argnums=(0, 1))(*args, jnp.asarray(mask))
    np.testing.assert_allclose(np.asarray(g0[0]), np.asarray(g_mu), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g0[1]), np.asarray(g_lv), rtol=1e-6)
  else:  # Not the gradient of w * l with w differentiated too (it would add beta w l).
    with_w = want_lv + beta * per * mask[:, None] / (mask.sum() * mu.shape[1])
    assert not np.allclose(np.asarray(g_lv), with_w, rtol=1e-3, atol=1e-6)

def test_annotator_kl_matches_numerical_integration():
  from scipy import integrate, stats
  rng = np.random.default_rng(104)
  n, dims = 4, 2
  t_mean = rng.uniform(0.2, 0.8, (n, dims))
  t_std = rng.uniform(0.05, 0.3, (n, dims))
  mu = rng.uniform(0, 1, (n, dims))
  log_var = rng.uniform(-5, -1, (n, dims))
  sd = np.exp(0.5 * log_var)

  def kl(m, s, m2, s2):  # Integral of p log(p / q), p = N(m, s^2), q = N(m2, s2^2).
    f = lambda x: stats.norm.pdf(x, m, s) * (  # noqa: E731
        stats.norm.logpdf(x, m, s) - stats.norm.logpdf(x, m2, s2))
    return integrate.quad(f, m - 15 * s, m + 15 * s, epsabs=1e-12, epsrel=1e-10)[0]

  want = np.array([[kl(t_mean[i, d], t_std[i, d], mu[i, d], sd[i, d]) for d in range(dims)]
                   for i in range(n)])
  got = float(losses.annotator_kl(*_f32(mu, log_var, t_mean, t_std)))
  assert got == pytest.approx(want.mean(), rel=1e-5)
  mask = np.array([1.0, 0.0, 1.0, 0.0])
  got = float(losses.annotator_kl(*_f32(mu, log_var, t_mean, t_std, mask)))
  assert got == pytest.approx(want[[0, 2]].mean(), rel=1e-5)
  # Zero when the prediction is the annotators' distribution.
  same = float(losses.annotator_kl(*_f32(t_mean, np.log(t_std ** 2), t_mean, t_std)))
  assert same == pytest.approx(0.0, abs=1e-6)
  # Raters who all agreed (std 0): finite, the variance floored at 1e-8 inside the log.
  zero = float(losses.annotator_kl(*_f32(mu, log_var, t_mean, np.zeros_like(t_std))))
  floor = 0.5 * (log_var - np.log(1e-8) + (t_mean - mu) ** 2 / np.exp(log_var) - 1)
  assert zero == pytest.approx(floor.mean(), rel=1e-5)

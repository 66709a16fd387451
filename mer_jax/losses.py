"""Training losses."""

import math

import jax
import jax.numpy as jnp
import optax


def mse(pred: jax.Array, target: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Mean squared error over examples and dimensions; [batch, dims] -> scalar.

  `mask` [batch] (1 = real example) excludes padding; the mean is over real examples.
  """
  sq = jnp.square(pred - target).mean(axis=-1)
  if mask is None:
    return sq.mean()
  return (sq * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def info_nce(audio: jax.Array, lyrics: jax.Array, logit_scale: jax.Array) -> jax.Array:
  """Symmetric InfoNCE (CLIP) loss of matched rows; [batch, dim] x2 -> scalar.

  Row i of `audio` and of `lyrics` are the same song (the positive pair); every other
  row of the (global) batch is a negative. logits = logit_scale * audio @ lyrics^T
  (cosine similarities for L2-normalised rows; logit_scale = 1 / temperature). The loss
  is the mean of the audio->lyrics and lyrics->audio cross-entropies.
  """
  logits = logit_scale * audio @ lyrics.T
  labels = jnp.arange(logits.shape[0])
  a2l = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  l2a = optax.softmax_cross_entropy_with_integer_labels(logits.T, labels)
  return 0.5 * (a2l.mean() + l2a.mean())


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float,
            mask: jax.Array | None = None) -> jax.Array:
  """SimCLR's NT-Xent (Chen et al. 2020) of two views; [batch, dim] x2 (L2-normalised
  rows) -> scalar.

  The 2 x batch views are scored against each other (cosine / temperature, a view never
  against itself); each view's positive is the other view of its song, the rest of the
  (global) batch's views its negatives: the InfoNCE above with both views on both sides.
  The loss is the mean cross-entropy over the real views; `mask` [batch] (1 = real)
  leaves padded songs out as anchors and as negatives.
  """
  n = z1.shape[0]
  z = jnp.concatenate([z1, z2])
  logits = z @ z.T / temperature
  real = jnp.ones(n) if mask is None else mask.astype(logits.dtype)
  real = jnp.concatenate([real, real])
  excluded = jnp.eye(2 * n, dtype=bool) | (real[None, :] == 0)
  logits = jnp.where(excluded, -jnp.inf, logits)
  labels = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  ce = jnp.where(real > 0, ce, 0.0)  # A padded anchor's row is never read.
  return ce.sum() / jnp.maximum(real.sum(), 1.0)


def pairwise_margin(audio: jax.Array, lyrics: jax.Array, negatives: jax.Array,
                    margin: float = 1.0) -> jax.Array:
  """Contrastive margin loss (Hadsell et al. 2006) on L2-normalised [batch, dim] rows.

  For song i: 0.5 d(a_i, l_i)^2 (matched pair pulled together) plus
  0.5 max(0, margin - d(a_i, l_{negatives[i]}))^2 (mismatched pair pushed at least
  `margin` apart), averaged over songs; d is the Euclidean distance (0..2 on the unit
  sphere). `negatives` [batch] int indices come from `sample_negatives`.
  """
  pos_sq = jnp.sum(jnp.square(audio - lyrics), axis=-1)
  neg_sq = jnp.sum(jnp.square(audio - lyrics[negatives]), axis=-1)
  # The floor keeps the gradient of sqrt finite for identical embeddings.
  neg = jnp.sqrt(jnp.maximum(neg_sq, 1e-12))
  return 0.5 * jnp.mean(pos_sq + jnp.square(jax.nn.relu(margin - neg)))


NEGATIVE_SAMPLERS = ('random', 'other_quadrant')


def sample_negatives(rng: jax.Array, quadrant: jax.Array, mode: str = 'random'
                     ) -> jax.Array:
  """For each song of the batch, the index of another song whose lyrics are its
  mismatched pair; [batch] int32 quadrants (0..3) -> [batch] int32 indices.

  'random': uniform over the other songs; 'other_quadrant': uniform over songs of a
  different quadrant (uniform over the other songs when the batch has none).
  """
  if mode not in NEGATIVE_SAMPLERS:
    raise ValueError(f'negative sampler must be one of {NEGATIVE_SAMPLERS}, got {mode!r}')
  n = quadrant.shape[0]
  valid = ~jnp.eye(n, dtype=bool)
  if mode == 'other_quadrant':
    other = quadrant[:, None] != quadrant[None, :]
    valid = jnp.where(other.any(axis=1, keepdims=True), other, valid)
  scores = jnp.where(valid, jax.random.uniform(rng, (n, n)), -1.0)
  return jnp.argmax(scores, axis=1).astype(jnp.int32)


# Gaussian (mean + log-variance) head. Each loss is per element (example, dimension),
# averaged over dimensions and then over real examples as in `mse`.

_LOG_2PI = math.log(2 * math.pi)
# Floor of an annotator variance before its log (a song whose raters all agreed).
KL_MIN_VAR = 1e-8


def _masked_mean(per_element: jax.Array, mask: jax.Array | None) -> jax.Array:
  """[batch, dims] -> scalar: mean over dims, then over the examples with mask 1."""
  per_example = per_element.mean(axis=-1)
  if mask is None:
    return per_example.mean()
  return (per_example * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def _gaussian_nll_elements(mu: jax.Array, log_var: jax.Array, target: jax.Array
                           ) -> jax.Array:
  return 0.5 * (log_var + jnp.square(target - mu) * jnp.exp(-log_var) + _LOG_2PI)


def gaussian_nll(mu: jax.Array, log_var: jax.Array, target: jax.Array,
                 mask: jax.Array | None = None) -> jax.Array:
  """Negative log-likelihood in nats of `target` under N(mu, exp(log_var)); [batch,
  dims] each -> scalar.

  Per element 0.5 * (log_var + (target - mu)^2 / exp(log_var) + log(2 pi)) (the
  constant included, so the value is the true NLL); mean over dims, then over the real
  examples of `mask` [batch] (1 = real example).
  """
  return _masked_mean(_gaussian_nll_elements(mu, log_var, target), mask)


def beta_nll(mu: jax.Array, log_var: jax.Array, target: jax.Array, beta: float,
             mask: jax.Array | None = None) -> jax.Array:
  """beta-NLL (Seitzer et al. 2022, "On the pitfalls of heteroscedastic uncertainty
  estimation"); [batch, dims] each -> scalar.

  The per-element `gaussian_nll` times stop_gradient(var ** beta), var = exp(log_var):
  the weight rescales each element's gradients (beta = 0: the plain NLL; beta = 1: the
  mean's gradient is that of the MSE) without being optimised itself. Reduced as
  `gaussian_nll`.
  """
  weight = jax.lax.stop_gradient(jnp.exp(beta * log_var))
  return _masked_mean(_gaussian_nll_elements(mu, log_var, target) * weight, mask)


def annotator_kl(mu: jax.Array, log_var: jax.Array, target_mean: jax.Array,
                 target_std: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """KL(N(target_mean, target_std^2) || N(mu, exp(log_var))) in nats: the annotators'
  distribution of a song's rating against the prediction; [batch, dims] each -> scalar.

  Per element 0.5 * (log_var - log(std^2) + (std^2 + (target_mean - mu)^2) / exp(log_var)
  - 1), with std^2 floored at KL_MIN_VAR (1e-8) inside the log; reduced as
  `gaussian_nll`.
  """
  t_var = jnp.square(target_std)
  per = 0.5 * (log_var - jnp.log(jnp.maximum(t_var, KL_MIN_VAR))
               + (t_var + jnp.square(target_mean - mu)) * jnp.exp(-log_var) - 1.0)
  return _masked_mean(per, mask)

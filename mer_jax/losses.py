"""Training losses."""

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

"""A fine-tuned BERT's training steps on the real tokens only ("packing").

Lyrics are padded to the longest of the data (demo: 104 tokens, a median of 79 real),
and every token-wise part of a transformer layer (the dense layers, GELU, LayerNorm,
dropout) costs the same on a padding position as on a word. Packed, a layer gathers
the batch's real tokens into a fixed number of rows ([rows, dim]: the most real tokens
of any training batch of the run, `rows_for_training`), runs those parts on them, and
scatters back to [batch, tokens, dim] only for the attention core. The parameters,
dropout masks and attention are the unpacked layer's, so the real tokens' values and
every gradient equal the unpacked ones to float rounding (tests/test_packing.py).

Only training steps pack (`bert.TextTower.packed_rows`; evaluation and embedding see
whole batches of unknown lengths), and only on one device: the gather crosses the rows
of a batch that the 'data' axis would split.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def pack_index(attention_mask: jax.Array, rows: int) -> jax.Array:
  """[batch, tokens] mask -> int32 [rows]: the flat (batch-major) positions of the real
  tokens, then batch * tokens (out of range: gathers read zeros there, scatters drop
  them). `rows` must be at least the mask's number of real tokens."""
  flat = attention_mask.reshape(-1) > 0
  return jnp.nonzero(flat, size=rows, fill_value=flat.shape[0])[0].astype(jnp.int32)


def _rows(x: jax.Array, index: jax.Array) -> jax.Array:
  """[batch, tokens, d] -> [rows, d]: the rows `index` (zeros where out of range)."""
  return x.reshape(-1, x.shape[-1]).at[index].get(mode='fill', fill_value=0)


def _unpack(y: jax.Array, index: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """[rows, d] -> [batch, tokens, d], zeros at the positions `index` does not name."""
  out = jnp.zeros((shape[0] * shape[1], y.shape[-1]), y.dtype)
  return out.at[index].set(y, mode='drop').reshape(shape[0], shape[1], y.shape[-1])


def _dropout_rows(drop: nn.Dropout, y: jax.Array, index: jax.Array,
                  shape: tuple[int, ...], deterministic: bool) -> jax.Array:
  """flax's `drop(full)` for the rows `index` of a [batch, tokens, d] tensor `full`
  given as y [rows, d]: the same mask (drawn from drop's rng in the full shape), so a
  packed step sees the dropout an unpacked one does."""
  if deterministic or drop.rate == 0.0:
    return y
  if drop.rate == 1.0 or drop.broadcast_dims:  # Not in transformers' BERT.
    raise NotImplementedError(f'packed dropout with {drop}')
  keep = 1.0 - drop.rate
  mask = jax.random.bernoulli(drop.make_rng(drop.rng_collection), p=keep,
                              shape=(shape[0], shape[1], y.shape[-1]))
  return lax.select(_rows(mask, index), y / keep, jnp.zeros_like(y))


def _packed_layer(layer: nn.Module, hidden: jax.Array, mask: jax.Array,
                  index: jax.Array, deterministic: bool) -> jax.Array:
  """transformers' `FlaxBertLayer` (self-attention, no cache or cross-attention) with
  every token-wise part (the dense layers, dropout, LayerNorm, GELU) on the packed rows
  `index` of hidden [batch, tokens, dim]; only the attention core sees [batch, tokens].
  Padding rows come out as zeros: they are masked out of attention (their weights are
  exactly 0) and of the pooling, so the real tokens' values are the unpacked layer's,
  to float rounding. The same submodules, parameters and dropout rngs as the layer's
  own `__call__` (tests/test_packing.py)."""
  from flax.linen.attention import dot_product_attention_weights
  shape, dim = hidden.shape, hidden.shape[-1]
  sa, so, cfg = layer.attention.self, layer.attention.output, layer.config
  x = _rows(hidden, index)

  def heads(y):
    return _unpack(y, index, shape).reshape(shape[0], shape[1],
                                            cfg.num_attention_heads, -1)
  q, k, v = heads(sa.query(x)), heads(sa.key(x)), heads(sa.value(x))
  keys_mask = jnp.expand_dims(mask, axis=(-3, -2))  # As FlaxBertSelfAttention builds it.
  bias = lax.select(keys_mask > 0, jnp.full(keys_mask.shape, 0.0).astype(sa.dtype),
                    jnp.full(keys_mask.shape, jnp.finfo(sa.dtype).min).astype(sa.dtype))
  rate = cfg.attention_probs_dropout_prob
  weights = dot_product_attention_weights(
      q, k, bias=bias, dropout_rng=(sa.make_rng('dropout') if not deterministic
                                    and rate > 0.0 else None),
      dropout_rate=rate, broadcast_dropout=True, deterministic=deterministic,
      dtype=sa.dtype, precision=None)
  attn = _rows(jnp.einsum('...hqk,...khd->...qhd', weights, v).reshape(shape), index)
  y = so.LayerNorm(_dropout_rows(so.dropout, so.dense(attn), index, shape,
                                 deterministic) + x)
  out = layer.output
  z = out.dense(layer.intermediate(y))
  z = out.LayerNorm(_dropout_rows(out.dropout, z, index, shape, deterministic) + y)
  return _unpack(z, index, (shape[0], shape[1], dim))


def layers_packed(index: jax.Array) -> Any:
  """An interceptor running each plain self-attention `FlaxBertLayer` packed."""
  from transformers.models.bert.modeling_flax_bert import FlaxBertLayer

  def intercept(call: Any, args: tuple, kwargs: dict, context: Any) -> Any:
    if not (isinstance(context.module, FlaxBertLayer)
            and context.method_name == '__call__'):
      return call(*args, **kwargs)
    a = inspect.signature(FlaxBertLayer.__call__).bind(context.module, *args, **kwargs)
    a.apply_defaults()
    a = a.arguments
    if (a['layer_head_mask'] is not None or a['encoder_hidden_states'] is not None
        or a['init_cache'] or a['output_attentions'] or context.module.config.is_decoder):
      return call(*args, **kwargs)  # What the packed layer does not cover.
    return (_packed_layer(context.module, a['hidden_states'], a['attention_mask'], index,
                          a['deterministic']),)
  return intercept


def rows_for_training(lengths: np.ndarray, orders: Sequence[np.ndarray], batch_size: int,
                      multiple: int = 8) -> int:
  """The packed rows a run's training steps need: the most real tokens of any of its
  batches, rounded up to `multiple`. `lengths` [examples]: real tokens per example, in
  file order; `orders`: each epoch's visiting order (`input_pipeline.epoch_order`), cut
  into full batches of `batch_size` as training does."""
  most = 0
  for order in orders:
    n = len(order) // batch_size
    if n:
      most = max(most, int(lengths[order[:n * batch_size]].reshape(n, batch_size)
                           .sum(axis=1).max()))
  return -(-most // multiple) * multiple


def training_rows(config: Any, train_split: Any, n_train: int,
                  epoch_order: Callable[[int, int, int], np.ndarray]) -> int:
  """`rows_for_training` of a run: its `train_split` (`input_pipeline.load_split`'s
  dataset or `kept_split.keep`'s arrays, `n_train` examples, with an attention mask) in
  the orders `epoch_order(n, seed, epoch)` of its epochs (`input_pipeline.epoch_order`);
  0 when nothing is packed (`config.text.pack_tokens` off, or several devices)."""
  if not config.text.get('pack_tokens', False) or jax.device_count() > 1:
    return 0
  from mer_jax import kept_split  # TensorFlow: not for prediction, which imports this.
  lengths = kept_split.token_counts(train_split)
  if len(lengths) != n_train:
    raise ValueError(f'the training split has {len(lengths)} examples, not {n_train}')
  orders = [epoch_order(n_train, config.seed, epoch)
            for epoch in range(config.train.num_epochs)]
  return rows_for_training(lengths, orders, config.train.batch_size)


def checked(batches: Any, rows: int) -> Any:
  """`batches` (host dicts) as they are; raises if one has more real tokens than the
  packed `rows` (which would drop some: `training_rows` counts every batch, so this
  means the batches are not the ones it counted)."""
  for batch in batches:
    real = int(np.sum(batch['attention_mask'])) if rows else 0
    if real > rows:
      raise ValueError(f'a training batch has {real} real tokens, more than the {rows} '
                       'packed rows counted for this run')
    yield batch

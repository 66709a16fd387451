"""Orbax checkpoints of a run: the latest N epochs and the best on validation.

Each checkpoint has two items: `state` (the TrainState pytree: params, BatchNorm
statistics, optimizer state incl. the plateau factor, step) and `meta` (JSON: epoch,
history, early-stopping and plateau state, the config, the preprocessing constants and
the text encoder's identity). The workdir alone is thus enough to resume, evaluate and
predict. Saves are synchronous: a killed run leaves the previous checkpoints intact
(Orbax writes to a temporary folder and renames it when complete).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies


def _selection(metrics: dict) -> float:
  return metrics['selection']


class Checkpointer:
  """Latest `keep` checkpoints plus the one with the lowest selection value."""

  def __init__(self, workdir: str, keep: int = 3):
    self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            preservation_policy=policies.AnyPreservationPolicy([
                policies.LatestN(n=keep),
                policies.BestN(get_metric_fn=_selection, reverse=True, n=1)]),
            best_fn=_selection, best_mode='min',
            enable_async_checkpointing=False, create=True),
        item_handlers={'state': ocp.StandardCheckpointHandler(),
                       'meta': ocp.JsonCheckpointHandler()})

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    return self.manager.best_step()

  def save(self, step: int, state: Any, meta: dict, selection: float) -> None:
    """Saves checkpoint `step`; `selection` (lower is better: the validation loss, or
    1 - MRR for the Siamese model) decides which is best."""
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        metrics={'selection': float(selection)})
    self.manager.wait_until_finished()

  def restore(self, step: int, target: Any) -> tuple[Any, dict]:
    """(state shaped and sharded like `target`, meta) of checkpoint `step`."""
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    return out.state, out.meta

  def restore_meta(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta

  def restore_raw(self, step: int) -> dict:
    """The `state` item of checkpoint `step` as saved (nested dicts of arrays on this
    process's first device, whatever mesh saved them), for reading parts of another
    run (e.g. its audio tower)."""
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=local),
                          self.manager.item_metadata(step)['state'])
    return self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target))).state

  def close(self) -> None:
    self.manager.close()


def restore_best(workdir: str) -> tuple[int, dict]:
  """(step, `state` as saved: nested dicts of arrays) of a run's best checkpoint.

  Raises:
    FileNotFoundError when the run has no checkpoint, ValueError naming the checkpoint
    when it cannot be read (damaged files).
  """
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):  # Never created here.
    raise FileNotFoundError(f'{workdir} has no checkpoint yet')
  ckpt = Checkpointer(workdir, keep=1)
  try:
    step = ckpt.best_step()
    if step is None:
      raise FileNotFoundError(f'{workdir} has no checkpoint yet')
    try:
      return step, ckpt.restore_raw(step)
    except Exception as e:  # Orbax/TensorStore raise many types for damaged files.
      raise ValueError(f'{ckpt.directory}/{step}: checkpoint cannot be read '
                       f'({type(e).__name__}: {str(e).splitlines()[0][:300]})') from e
  finally:
    ckpt.close()

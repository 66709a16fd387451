"""Orbax checkpoints of a run: the latest N epochs and the best on validation.

Each checkpoint has two items: `state` (the TrainState pytree: params, BatchNorm
statistics, optimizer state incl. the plateau factor, step) and `meta` (JSON: epoch,
history, early-stopping and plateau state, the config, the preprocessing constants and
the text encoder's identity). The workdir alone is thus enough to resume, evaluate and
predict. Saves are synchronous: a killed run leaves the previous checkpoints intact
(Orbax writes to a temporary folder and renames it when complete).

`state` is saved packed: one flat array per dtype (the leaves raveled in flatten order)
plus a third item, `layout` (JSON: each leaf's path, shape and dtype). Orbax spends ~2 ms
of Python per array it writes (tensorstore specs, replica slices, paths): the demo's
Model 4 state (135 leaves, 2 MB) took 0.26 s per save, every epoch, and 0.04 s packed
(benchmarks/checkpoints.py). Checkpoints written before packing (no `layout` item)
still restore.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

LAYOUT = 'layout'  # The item that says how `state` was packed.


def _selection(metrics: dict) -> float:
  return metrics['selection']


def _key(k: Any) -> str:
  """A path entry as Orbax names it (dict key, dataclass field, sequence index)."""
  for attr in ('key', 'name', 'idx'):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


@jax.jit
def _pack(leaves: list[jax.Array]) -> dict[str, jax.Array]:
  """{dtype name: the leaves of that dtype raveled and concatenated, in order}."""
  groups: dict[str, list] = {}
  for x in leaves:
    groups.setdefault(jnp.dtype(x.dtype).name, []).append(jnp.ravel(x))
  return {k: jnp.concatenate(v) for k, v in groups.items()}


def _pieces(layout: list[dict]) -> list[tuple[str, int, int]]:
  """(dtype, start, stop) of each leaf in its packed array."""
  at: dict[str, int] = {}
  out = []
  for leaf in layout:
    size = int(np.prod(leaf['shape'], dtype=np.int64))
    start = at.get(leaf['dtype'], 0)
    at[leaf['dtype']] = start + size
    out.append((leaf['dtype'], start, start + size))
  return out


def _first_device() -> jax.sharding.Sharding:
  """Where raw and packed arrays are read: this process's first device."""
  return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def _unpack(packed: dict[str, Any], layout: list[dict]) -> list[np.ndarray]:
  """The leaves (host arrays) of packed arrays on this process's devices."""
  host = {d: np.asarray(x.addressable_data(0)) for d, x in packed.items()}
  return [host[d][a:b].reshape(leaf['shape'])
          for (d, a, b), leaf in zip(_pieces(layout), layout)]


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
                       'meta': ocp.JsonCheckpointHandler(),
                       LAYOUT: ocp.JsonCheckpointHandler()})

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    return self.manager.best_step()

  def save(self, step: int, state: Any, meta: dict, selection: float) -> None:
    """Saves checkpoint `step`; `selection` (lower is better: the validation loss, or
    1 - MRR for the Siamese model) decides which is best."""
    paths, leaves = zip(*jax.tree_util.tree_flatten_with_path(state)[0])
    leaves = [jnp.asarray(x) for x in leaves]  # A Python scalar leaf gets its dtype.
    layout = [{'path': [_key(k) for k in path], 'shape': list(np.shape(x)),
               'dtype': jnp.dtype(x.dtype).name} for path, x in zip(paths, leaves)]
    self.manager.save(step, args=ocp.args.Composite(**{
        'state': ocp.args.StandardSave(_pack(leaves)),
        'meta': ocp.args.JsonSave(meta), LAYOUT: ocp.args.JsonSave(layout)}),
        metrics={'selection': float(selection)})
    self.manager.wait_until_finished()

  def _layout(self, step: int) -> list[dict] | None:
    """How checkpoint `step`'s state was packed; None for an unpacked (older) one."""
    if not os.path.isdir(os.path.join(self.directory, str(step), LAYOUT)):
      return None
    return self.manager.restore(step, args=ocp.args.Composite(
        **{LAYOUT: ocp.args.JsonRestore()}))[LAYOUT]

  def restore(self, step: int, target: Any) -> tuple[Any, dict]:
    """(state shaped and sharded like `target`, meta) of checkpoint `step`."""
    layout = self._layout(step)
    if layout is None:
      out = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
      return out.state, out.meta
    leaves, treedef = jax.tree.flatten(target)
    want = [{'shape': list(np.shape(x)), 'dtype': jnp.dtype(x.dtype).name} for x in leaves]
    if want != [{k: v for k, v in leaf.items() if k != 'path'} for leaf in layout]:
      raise ValueError(f'{self.directory}/{step}: the checkpoint\'s state does not match '
                       'this model\'s (shapes or dtypes differ)')
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(self._packed_target(layout)),
        meta=ocp.args.JsonRestore()))
    # Each leaf placed as the target's is (replicated over the mesh; every process
    # read the whole packed arrays).
    placed = [jax.make_array_from_callback(x.shape, x.sharding, lambda i, v=v: v[i])
              for x, v in zip(leaves, _unpack(out.state, layout))]
    return treedef.unflatten(placed), out.meta

  def _packed_target(self, layout: list[dict]) -> dict[str, jax.ShapeDtypeStruct]:
    """The packed arrays, read whole onto this process's first device."""
    # Each dtype's last leaf ends at its packed array's length.
    return {d: jax.ShapeDtypeStruct((b,), d, sharding=_first_device())
            for d, _, b in _pieces(layout)}

  def restore_meta(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore())).meta

  def restore_raw(self, step: int) -> dict:
    """The `state` item of checkpoint `step` as saved (nested dicts of arrays on this
    process's first device, whatever mesh saved them), for reading parts of another
    run (e.g. its audio tower)."""
    layout = self._layout(step)
    if layout is None:
      target = jax.tree.map(
          lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=_first_device()),
          self.manager.item_metadata(step)['state'])
      return self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target))).state
    packed = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(self._packed_target(layout)))).state
    raw: dict = {}
    for leaf, value in zip(layout, _unpack(packed, layout)):
      node = raw
      for k in leaf['path'][:-1]:
        node = node.setdefault(k, {})
      node[leaf['path'][-1]] = value
    return jax.device_put(raw, _first_device())

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

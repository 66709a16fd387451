"""Multi-process JAX: `initialize(config)` starts `jax.distributed` when the run spans
several processes, before any other JAX call.

From `config.distributed.coordinator_address` ('host:port' of process 0),
`num_processes` and `process_id` when the address is set; else from what JAX detects
on a cluster it knows (SLURM, Open MPI, Kubernetes, TPU pods: `jax.distributed`'s own
cluster detection); else nothing (one process, today's behaviour). CPU devices of
different processes talk over gloo (TCP).
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Callable, TypeVar

import jax
import ml_collections
import numpy as np

from mer_jax import logs

T = TypeVar('T')

# How long the other processes wait for process 0 (`primary_first`): long enough for it
# to prepare a large dataset (hours). The coordination service's key-value store, not a
# device collective: gloo's (CPU) gives up when a process is 30 s late.
_WAIT_S = 24 * 3600
# What process 0 posts when `primary_first`'s work succeeded (else its error).
_DONE = 'done'
# Numbers `primary_first`'s calls in this process. Every process makes the same calls in
# the same order (one program, SPMD), so the number names the same call in all of them.
_CALLS = itertools.count()

# Environment variables by which a cluster JAX detects says the job has several tasks.
_CLUSTER_TASKS = ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE')


def wanted(config: ml_collections.ConfigDict) -> bool:
  """Whether this run is multi-process (set in the config, or launched by a cluster
  with more than one task)."""
  d = config.get('distributed')
  if d is not None and d.coordinator_address:
    return True
  return any(int(os.environ.get(v, '1') or 1) > 1 for v in _CLUSTER_TASKS)


def initialize(config: ml_collections.ConfigDict) -> bool:
  """Starts jax.distributed if the run is multi-process (idempotent); returns whether
  it did. Raises ValueError for an address without num_processes / process_id."""
  if not wanted(config):
    return False
  if jax.distributed.is_initialized():
    return True
  d = config.distributed
  if d.coordinator_address and (d.num_processes < 1
                                or not 0 <= d.process_id < d.num_processes):
    raise ValueError(
        f'config.distributed.coordinator_address = {d.coordinator_address!r} needs '
        f'num_processes >= 1 and 0 <= process_id < num_processes (got '
        f'{d.num_processes}, {d.process_id})')
  # Cross-process collectives of CPU devices (tests, CPU clusters); GPUs use NCCL.
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if d.coordinator_address:
    jax.distributed.initialize(coordinator_address=d.coordinator_address,
                               num_processes=d.num_processes, process_id=d.process_id)
  else:
    jax.distributed.initialize()  # The cluster's own environment says it all.
  return True


# What the training loop needs to run on several processes. Each is what one process
# does today when there is one process (nothing to wait for, gather or skip).


def is_primary() -> bool:
  """Whether this process writes the run's files (report, config.json, TensorBoard):
  process 0."""
  return jax.process_index() == 0


def primary_first(name: str, fn: Callable[[], T],
                  others: Callable[[], T] | None = None) -> T:
  """`fn()` in process 0, then `(others or fn)()` in the others once it has finished:
  shared files that `fn` writes once (prepared data, embedding caches, the report) are
  then only read by the rest.

  When `fn` raises in process 0, the others raise too (a ValueError naming `name` and
  process 0's error: one line from launch.py) instead of waiting for it: process 0
  posts how it ended in the coordination service's key-value store, where the others
  wait. Without that they waited at a barrier until the coordination service gave up
  on process 0 (minutes), and process 0 waited for them at its exit.
  """
  if jax.process_count() == 1:
    return fn()
  import orbax.checkpoint as ocp
  client = ocp.multihost.get_jax_distributed_client()
  key = f'mer_jax/primary_first/{next(_CALLS)}/{name}'
  if is_primary():
    try:
      out = fn()
    except BaseException as e:
      message = logs.user_message(e) or ' '.join(str(e).split())  # One line.
      client.key_value_set(key, f'{type(e).__name__}: {message}')
      raise
    client.key_value_set(key, _DONE)
    return out
  status = client.blocking_key_value_get(key, _WAIT_S * 1000)
  if status != _DONE:
    raise ValueError(f'process 0 stopped at {name!r}, so process {jax.process_index()} '
                     f'stops too: {status}')
  return (others or fn)()


def local_rows(sharding: jax.sharding.Sharding, global_size: int) -> slice:
  """The rows of a global batch of `global_size` (split along its first axis by
  `sharding`) that this process's devices hold: one contiguous block.

  Raises:
    ValueError when they are not contiguous (a mesh that interleaves processes).
  """
  idx = sharding.addressable_devices_indices_map((global_size,))
  spans = sorted({(s[0].start or 0, global_size if s[0].stop is None else s[0].stop)
                  for s in idx.values()})
  for (_, stop), (start, _) in zip(spans, spans[1:]):
    if start != stop:
      raise ValueError(f'this process holds rows {spans} of a batch of {global_size}: '
                       'not one block (the mesh interleaves processes)')
  return slice(spans[0][0], spans[-1][1])


def global_batch(local: Any, sharding: jax.sharding.Sharding) -> Any:
  """The global arrays of a batch whose rows `local_rows` are this process's `local`
  (a pytree of numpy arrays); the whole batch with one process."""
  if jax.process_count() == 1:
    return jax.device_put(local, sharding)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x),
                      local)


def gather_rows(local: dict[str, np.ndarray], rows: slice | None
                ) -> dict[str, np.ndarray]:
  """Every process's `local` arrays (this one's = `rows` of the global batch, first
  axis), concatenated in the global batch's row order; `local` itself with one process.
  Byte strings (song ids) travel as padded uint8."""
  if jax.process_count() == 1:
    return local
  if rows is None:
    raise ValueError('gather_rows: several processes need this one\'s rows')
  from jax.experimental import multihost_utils
  text = {k: [b if isinstance(b, bytes) else b'' for b in v]  # Padding rows hold 0.
          for k, v in local.items() if v.dtype.kind in 'SO'}
  width = max([1] + [len(b) for v in text.values() for b in v])
  width = int(np.max(multihost_utils.process_allgather(np.int32(width))))
  arrays = {k: (np.asarray(text[k], f'S{width}').view(np.uint8).reshape(len(v), width)
                if k in text else v) for k, v in local.items()}
  arrays['__start__'] = np.int32(rows.start)
  everyone = multihost_utils.process_allgather(arrays)  # [processes, ...] each.
  order = np.argsort(everyone.pop('__start__'))
  out = {}
  for k, v in everyone.items():
    v = np.concatenate([v[i] for i in order])
    out[k] = (np.asarray([bytes(r).rstrip(b'\0') for r in v], object) if k in text else v)
  return out

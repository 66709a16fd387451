"""Multi-process JAX: `initialize(config)` starts `jax.distributed` when the run spans
several processes, before any other JAX call.

From `config.distributed.coordinator_address` ('host:port' of process 0),
`num_processes` and `process_id` when the address is set; else from what JAX detects
on a cluster it knows (SLURM, Open MPI, Kubernetes, TPU pods: `jax.distributed`'s own
cluster detection); else nothing (one process, today's behaviour). CPU devices of
different processes talk over gloo (TCP).
"""

from __future__ import annotations

import os

import ml_collections

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
  import jax
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

"""Multi-process JAX (mer_jax/distributed.py): two processes on the loopback address, one
CPU device each, started through config.distributed, form one 2-device mesh whose
collectives sum both processes' data; training refuses to run on several processes
until its input is sharded per process."""

import json
import os
import socket
import subprocess
import sys

import pytest

from configs import tiny
from mer_jax import distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def test_two_processes_form_one_mesh_over_loopback():
  address = f'127.0.0.1:{_free_port()}'
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  env.pop('XLA_FLAGS', None)  # One device per process.
  procs = [subprocess.Popen([sys.executable, os.path.join(REPO, 'tests', 'distributed_probe.py'),
                             address, '2', str(i)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = []
  for p in procs:
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err[-3000:]
    outs.append(json.loads(out.strip().splitlines()[-1]))
  assert sorted(o['process_index'] for o in outs) == [0, 1]
  for o in outs:  # 1 (process 0) + 10 (process 1): each process's own value, summed.
    assert (o['process_count'], o['device_count'], o['local_device_count']) == (2, 2, 1)
    assert o['sum'] == 11.0
    assert o['training'].startswith('2 processes: training reads its data in one process')


def test_one_process_unless_configured_or_on_a_multi_task_cluster(monkeypatch):
  config = tiny.get_config()
  for var in ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE'):
    monkeypatch.delenv(var, raising=False)
  assert not distributed.wanted(config) and not distributed.initialize(config)
  monkeypatch.setenv('SLURM_NTASKS', '1')
  assert not distributed.wanted(config)
  monkeypatch.setenv('SLURM_NTASKS', '4')
  assert distributed.wanted(config)
  monkeypatch.delenv('SLURM_NTASKS')
  config.distributed.coordinator_address = '127.0.0.1:1'
  assert distributed.wanted(config)
  with pytest.raises(ValueError, match='needs num_processes >= 1 and 0 <= process_id'):
    distributed.initialize(config)

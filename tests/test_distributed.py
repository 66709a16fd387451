"""Multi-process JAX (mer_jax/distributed.py): processes on the loopback address, one
CPU device each, started through config.distributed.

- The primitives: one 2-device mesh whose collectives see both processes' data, each
  process's rows of a global batch, and the rows gathered back in order.
- Training: two processes train the tiny config like one process with two devices (the
  same global batches: same numbers within the 1-vs-2-device tolerance); one of them is
  SIGKILLed after the first epoch's checkpoint, both restart and resume from it; the
  frozen lyrics embeddings are computed once, by process 0, and only process 0 writes.
"""

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from configs import tiny
from mer_jax import distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _env(devices: int = 1) -> dict:
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  env.pop('XLA_FLAGS', None)
  if devices > 1:
    env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  return env


def test_two_processes_form_one_mesh_over_loopback(tmp_path):
  address = f'127.0.0.1:{_free_port()}'
  procs = [subprocess.Popen([sys.executable, os.path.join(REPO, 'tests', 'distributed_probe.py'),
                             address, '2', str(i), str(tmp_path)], env=_env(),
                            stdout=subprocess.PIPE,
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
    # Each process holds its half of a batch of 6 and gets everyone's rows back in order.
    assert o['rows'] == [3 * o['process_index'], 3 * o['process_index'] + 3]
    assert o['gathered_ids'] == ['a', 'bb', 'ccc', 'dddd-long-id', '', '']
    assert o['gathered_x'] == [0, 1, 2, 10, 11, 12]
    assert o['refused'].startswith("job 'cross' runs in one process")
  # primary_first: process 0's work, then the others' (after it: they read its file).
  assert [o['first'] for o in sorted(outs, key=lambda o: o['process_index'])] == [
      'fn', 'process 0']
  # Process 0 fails: its own error there, and the other stops with it at once.
  assert {o['process_index']: o['failed'] for o in outs} == {
      0: 'FileNotFoundError: no such release',
      1: "ValueError: process 0 stopped at 'probe prepare', so process 1 stops too: "
         "FileNotFoundError: no such release"}


def test_a_user_error_in_process_0_stops_both_processes_with_one_line(tmp_path):
  """A release with a label file that lacks a column: process 0 finds out while it
  prepares the data, the other waiting for it. Both exit 1 with one line each, within
  seconds of each other (the other used to wait for process 0 until the coordination
  service gave up, and process 0 for it at exit: 5 minutes)."""
  labels = tmp_path / 'release' / 'PMEmo2019' / 'annotations' / 'static_annotations.csv'
  labels.parent.mkdir(parents=True)
  labels.write_text('musicId,Arousal(mean)\n1,0.5\n')
  address = f'127.0.0.1:{_free_port()}'
  procs = [subprocess.Popen(
      [sys.executable, 'launch.py', '--config=configs/tiny.py', f'--workdir={tmp_path}/run',
       '--config.data.source=pmemo', f'--config.data.root={tmp_path}/release',
       f'--config.data.data_dir={tmp_path}/prepared',
       f'--config.distributed.coordinator_address={address}',
       '--config.distributed.num_processes=2', f'--config.distributed.process_id={i}'],
      cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  errors = []
  for p in procs:
    _, err = p.communicate(timeout=150)
    assert p.returncode == 1 and 'Traceback' not in err, err[-3000:]
    errors.append([line for line in err.splitlines() if line.startswith('error: ')])
  assert errors[0] == [f'error: {labels}: missing column(s) Valence(mean); required: '
                       'musicId, Arousal(mean), Valence(mean); found musicId, Arousal(mean)']
  assert errors[1] == ["error: process 0 stopped at 'prepared data', so process 1 stops "
                       f"too: ManifestError: {errors[0][0][len('error: '):]}"]


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


def _launch(workdir: str, data: dict, epochs: int, process: tuple[int, int] | None,
            address: str, log: str, devices: int = 1) -> subprocess.Popen:
  """launch.py on the tiny config; `process` = (id, count) of a multi-process run."""
  args = [sys.executable, os.path.join(REPO, 'launch.py'), '--config=configs/tiny.py',
          f'--workdir={workdir}', f'--config.data.root={data["root"]}',
          f'--config.data.data_dir={data["data_dir"]}',
          f'--config.train.num_epochs={epochs}']
  if process is not None:
    args += [f'--config.distributed.coordinator_address={address}',
             f'--config.distributed.num_processes={process[1]}',
             f'--config.distributed.process_id={process[0]}']
  return subprocess.Popen(args, cwd=REPO, env=_env(devices), stdout=open(log, 'w'),
                          stderr=subprocess.STDOUT)


def _finish(procs: list[subprocess.Popen], logs: list[str]) -> None:
  for p, log in zip(procs, logs):
    if p.wait(timeout=400) != 0:
      for q in procs:
        q.kill()
      pytest.fail(f'{log}: exit {p.returncode}\n' + open(log).read()[-4000:])


def _report(workdir: str, name: str) -> pd.DataFrame:
  return pd.read_csv(os.path.join(workdir, 'report', name))


def _assert_same_report(a: str, b: str) -> None:
  for name in ('metrics.csv', 'predictions.csv', 'history.csv'):
    x, y = _report(a, name), _report(b, name)
    num = x.select_dtypes('number').columns
    pd.testing.assert_frame_equal(x.drop(columns=num), y.drop(columns=num))
    np.testing.assert_allclose(y[num].to_numpy(float), x[num].to_numpy(float),
                               atol=1e-5, rtol=1e-5, err_msg=name)


def test_two_processes_train_like_one_with_two_devices_and_resume_after_a_kill(
    tiny_prepared, tmp_path):
  config, builder = tiny_prepared
  # A copy of the prepared data without any lyrics-embedding cache: the run makes it.
  data_dir = str(tmp_path / 'prepared')
  shutil.copytree(config.data.data_dir, data_dir)
  for f in glob.glob(os.path.join(data_dir, '**', 'lyrics_emb_*'), recursive=True):
    os.remove(f)
  data = {'root': config.data.root, 'data_dir': data_dir}
  steps_per_epoch = 28 // config.train.batch_size  # 28 training songs, batch 8.
  work, address = str(tmp_path / 'two'), f'127.0.0.1:{_free_port()}'
  first = str(tmp_path / 'checkpoint_1')
  logs = [str(tmp_path / f'kill{i}.log') for i in range(2)]
  procs = [_launch(work, data, 2, (i, 2), address, logs[i]) for i in range(2)]
  primary_pids = {procs[0].pid}
  ckpt = os.path.join(work, 'checkpoints', str(steps_per_epoch))
  deadline = time.time() + 400
  while not os.path.isdir(ckpt) and time.time() < deadline:
    assert all(p.poll() is None for p in procs), open(logs[0]).read()[-3000:]
    time.sleep(0.02)
  procs[1].send_signal(signal.SIGKILL)  # One process dies; the other cannot go on.
  procs[1].wait()
  procs[0].send_signal(signal.SIGKILL)
  procs[0].wait()
  shutil.copytree(ckpt, first)  # The first epoch's checkpoint, as the two processes saved it.
  saved = sorted(int(d) for d in os.listdir(os.path.join(work, 'checkpoints')) if d.isdigit())
  log0 = open(logs[0]).read()
  assert 'embedding 40 lyrics' in log0 and 'embedding 40' not in open(logs[1]).read()

  # Restart both: they resume from the last checkpoint.
  address = f'127.0.0.1:{_free_port()}'
  logs = [str(tmp_path / f'resume{i}.log') for i in range(2)]
  procs = [_launch(work, data, 2, (i, 2), address, logs[i]) for i in range(2)]
  primary_pids.add(procs[0].pid)
  _finish(procs, logs)
  for log in logs:
    assert f'resuming {work} from step {saved[-1]}' in open(log).read()

  # One process with two devices, uninterrupted: the same numbers.
  ref = str(tmp_path / 'one')
  log = str(tmp_path / 'one.log')
  _finish([_launch(ref, data, 2, None, '', log, devices=2)], [log])
  assert 'embedding 40' not in open(log).read()  # The cache process 0 wrote.
  _assert_same_report(ref, work)
  hist = _report(ref, 'history.csv')
  assert hist.step.tolist() == [steps_per_epoch, 2 * steps_per_epoch]
  # After one epoch the two processes had the one process's validation numbers.
  meta = json.load(open(os.path.join(first, 'meta', 'metadata')))
  one_epoch = meta['history'][0]
  for k in ('train_loss', 'val_loss'):
    assert one_epoch[k] == pytest.approx(hist[k].iloc[0], rel=1e-5, abs=1e-6), k
  # Process 0 alone wrote TensorBoard: events.out.tfevents.<time>.<host>.<pid>.<n>.v2
  events = glob.glob(os.path.join(work, 'events.out.tfevents.*'))
  assert len(events) == 2
  assert {int(os.path.basename(e).split('.')[-3]) for e in events} == primary_pids

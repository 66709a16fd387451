"""Runs trained side by side in worker processes (mer_jax/run_pool.py). That such runs
write byte-identical results to runs trained in turn is tests/test_sweep.py's
test_parallel_runs_write_the_same_results."""

import os

import pytest

from mer_jax import run_pool
from tests.conftest import tiny_config


def test_a_failed_run_raises_its_error_and_stops_the_runs_not_started(tmp_path):
  bad = tiny_config(str(tmp_path / 'unused'))
  bad.train.num_epochs = 0  # train.check_config refuses it in the worker.
  good = tiny_config(str(tmp_path / 'unused'))
  said = []
  runs = [('bad', bad, str(tmp_path / 'bad')), ('good', good, str(tmp_path / 'good'))]
  with pytest.raises(ValueError, match=r'config.train.num_epochs = 0: must be a whole'):
    list(run_pool.train_all(runs, workers=1, say=said.append))
  log = (tmp_path / 'bad' / run_pool.LOG).read_text()
  assert 'the run failed' in log and 'num_epochs = 0' in log  # The worker's own log.
  assert said == ['2 runs, 1 at a time, each logging to <its workdir>/train.log',
                  f'bad: failed (ValueError; see {tmp_path / "bad" / run_pool.LOG})']
  assert not (tmp_path / 'good').exists()  # Never started.


def test_workers_must_be_at_least_one(tmp_path):
  with pytest.raises(ValueError, match='parallel_runs=0: must be at least 1'):
    list(run_pool.train_all([('a', tiny_config(str(tmp_path)), str(tmp_path / 'a'))], 0))
  assert os.listdir(tmp_path) == []

"""Job 'train': one model of `config.task` into the workdir (`train.train_and_evaluate`)."""

from __future__ import annotations

import os

import ml_collections

from mer_jax import tasks
from mer_jax import train as train_lib
from mer_jax.jobs import JobResult

MULTI_PROCESS = True  # Runs on several processes (jax.distributed).


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  task = tasks.get_task(config)
  results = train_lib.train_and_evaluate(config, workdir)
  return JobResult(results, os.path.abspath(os.path.join(workdir, 'report',
                                                         task.report_file)),
                   tuple(task.headline(results)))

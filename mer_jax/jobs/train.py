"""Job 'train': one model of `config.task` into the workdir (`train.train_and_evaluate`)."""

from __future__ import annotations

import os

import ml_collections

from mer_jax.jobs import JobResult

MULTI_PROCESS = True  # Runs on several processes (jax.distributed).
PREPARES_DATA = True  # Reads config.data: `jobs.run` checks the release is there first.


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  from mer_jax import tasks  # JAX and TensorFlow: after `jobs.run`'s early checks.
  from mer_jax import train as train_lib
  task = tasks.get_task(config)
  results = train_lib.train_and_evaluate(config, workdir)
  return JobResult(results, os.path.abspath(os.path.join(workdir, 'report',
                                                         task.report_file)),
                   tuple(task.headline(results)))

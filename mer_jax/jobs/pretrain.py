"""Job 'pretrain': self-supervised pretraining of the audio tower (task 'pretrain',
`mer_jax/tasks/pretrain.py`) on any prepared dataset, labels unused, into the workdir.
Its best checkpoint's tower is what `config.model.init_audio_from` reads, in every job,
and what job 'probe' compares."""

from __future__ import annotations

import os

import ml_collections

from mer_jax import runs
from mer_jax.jobs import JobResult

MULTI_PROCESS = True  # `train.train_and_evaluate`'s runs: every process and device.
PREPARES_DATA = True  # Reads config.data: `jobs.run` checks the release is there first.


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  from mer_jax import tasks  # JAX and TensorFlow: after `jobs.run`'s early checks.
  from mer_jax import train as train_lib
  c = runs.derive(config, task='pretrain', **{'model.modality': 'audio'})
  task = tasks.get_task(c)
  results = train_lib.train_and_evaluate(c, workdir)
  return JobResult(results, os.path.abspath(os.path.join(workdir, 'report',
                                                         task.report_file)),
                   (*task.headline(results),
                    f'Use the tower: --config.model.init_audio_from={workdir}'))

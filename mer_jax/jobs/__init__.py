"""Jobs: what `launch.py` runs, looked up by `config.job` (big_vision's rule: one module
each, one signature).

  train      one model (`config.task`): checkpoints and its report
  sweep      an experiment's runs over models, modalities and seeds; the results tables
  baselines  random / mean / quadrant-centre on the prepared songs
  cross      train on each dataset, test on every one (audio-only)
  exp3       Experiment 3: Siamese congruence against the fusion model's error
  dataset_report  the release's labels, bands, quadrants and audio after preparation
  ensemble   a sweep's seed runs per row combined into deep ensembles (uncertainty)
  pretrain   self-supervised pretraining of the audio tower (labels unused)
  probe      frozen towers compared by a head per dimension (MARBLE's linear probe)

Each `mer_jax.jobs.<name>` has `run(config, workdir) -> JobResult`; a new job is one new
module here. A job that runs on several processes (jax.distributed) says so with
`MULTI_PROCESS = True`; the others are refused there. A job that reads `config.data`
says so with `PREPARES_DATA = True`: its release is located before JAX and TensorFlow
are imported (`data_prep.prepare.locate`), so a job module imports them inside `run`,
or is light to import.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

import ml_collections


@dataclasses.dataclass(frozen=True)
class JobResult:
  """What a job hands back: its headline numbers and where its report is."""
  summary: dict[str, Any]  # The job's numbers (what its run returned).
  report: str  # Path of the job's main report (Markdown).
  lines: tuple[str, ...] = ()  # A few lines for the command line.

  def describe(self) -> str:
    """What launch.py prints."""
    return '\n'.join([*self.lines, f'Report: {self.report}'])


def names() -> tuple[str, ...]:
  """The jobs that exist (modules of this package)."""
  return tuple(m.name for m in pkgutil.iter_modules(__path__))


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  """Runs `config.job`."""
  if config.job not in names():
    raise ValueError(f'unknown job config.job = {config.job!r}; the jobs are '
                     f'{", ".join(names())}')
  job = importlib.import_module(f'{__name__}.{config.job}')
  if getattr(job, 'PREPARES_DATA', False):
    # A release or manifest that is not there, said before the imports below (~10 s).
    from data_prep import prepare
    prepare.locate(config)
  import jax
  from mer_jax import distributed, paths, train
  started = distributed.initialize(config)  # Before any other JAX call.
  if started and jax.process_count() > 1 and not getattr(job, 'MULTI_PROCESS', False):
    multi = [n for n in names()
             if getattr(importlib.import_module(f'{__name__}.{n}'), 'MULTI_PROCESS', 0)]
    raise ValueError(f'job {config.job!r} runs in one process (on every local device); '
                     f'on several processes: {", ".join(multi)}')
  if 'train' in config:
    train.check_config(config)
  paths.writable_dir(workdir, 'the workdir')  # Before any work: not after preparation.
  return job.run(config, workdir)

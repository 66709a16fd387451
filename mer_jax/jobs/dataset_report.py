"""Job 'dataset_report': the audit of the configured release after preparation
(`mer_jax.dataset_report`) into `<workdir>/report/dataset_report.md` and `.csv`, with
its histograms and scatter plot."""

from __future__ import annotations

import os

import ml_collections

from mer_jax import dataset_report
from mer_jax.jobs import JobResult

PREPARES_DATA = True  # Reads config.data: `jobs.run` checks the release is there first.


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  folder = os.path.abspath(os.path.join(workdir, 'report'))
  stats = dataset_report.write(config, folder)
  band = stats[(stats.split == 'all') & (stats.statistic == 'band_0.4_0.6')]
  lines = tuple(f'{r.dimension} in [0.4, 0.6]: {r.value:.1%} of the songs'
                for r in band.itertuples())
  return JobResult({'statistics': stats}, os.path.join(folder, 'dataset_report.md'), lines)

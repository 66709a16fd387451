"""Job 'baselines': random, mean and quadrant-centre baselines on the prepared songs
(`mer_jax.baselines`) into `<workdir>/report/baselines.csv` and `.md`."""

from __future__ import annotations

import os

import ml_collections

from mer_jax import baselines
from mer_jax.jobs import JobResult

PREPARES_DATA = True  # Reads config.data: `jobs.run` checks the release is there first.


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  b = baselines.compute(config)
  folder = os.path.abspath(os.path.join(workdir, 'report'))
  baselines.write(b, folder)
  return JobResult({'table': b.table, 'n_train': b.n_train, 'n_test': b.n_test,
                    'n_skipped': b.n_skipped}, os.path.join(folder, 'baselines.md'),
                   (b.table.to_string(index=False), b.songs_line()))

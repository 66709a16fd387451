"""Job 'ensemble': the seed runs of each row of a sweep (`config.sweep`, the same
workdir) combined into a deep ensemble (`mer_jax.ensemble`): a mixture per song, scored
with the point and uncertainty metrics next to the single runs.

Writes `<workdir>/report/ensemble/`: ensemble.md, uncertainty.csv,
ensemble_predictions.csv, calibration_<row>.png. Run it after the sweep has finished
(rows with fewer than 2 finished runs get no ensemble; missing runs are listed).
"""

from __future__ import annotations

import os

import ml_collections

from mer_jax import ensemble
from mer_jax.jobs import JobResult, sweep


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  todo = sweep.runs(config, workdir)
  groups, missing = {}, []
  for r in todo:
    if sweep.is_finished(workdir, r):
      groups.setdefault(r.label, []).append(sweep.run_dir(workdir, r))
    else:
      missing.append(r.name)
  if not groups:
    raise ValueError(f'{workdir}: no finished run of this sweep (run the sweep first: '
                     'config.job=\'sweep\' with the same config and workdir)')
  folder = os.path.abspath(os.path.join(workdir, 'report', 'ensemble'))
  text = ensemble.write(folder, groups)
  text = '# Deep ensembles\n\n' + text + (
      f'\nMissing (not finished): {", ".join(missing)}\n' if missing else '')
  path = os.path.join(folder, 'ensemble.md')
  with open(path, 'w') as f:
    f.write(text)
  n = {label: len(rs) for label, rs in groups.items()}
  return JobResult({'rows': n, 'missing': missing}, path, tuple(
      f'{label}: ensemble of {k} run(s)' + ('' if k > 1 else ' (needs 2+: none)')
      for label, k in n.items()))

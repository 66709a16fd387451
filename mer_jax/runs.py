"""Training runs in workdirs, as the jobs see them: a sub-run's config derived from an
experiment's, and whether a run has finished.

A run has finished when its report is complete: `train.train_and_evaluate` writes
`<workdir>/report/finished.json` (best step and the report's results) after every
other report file, so a run killed while reporting is not finished.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ml_collections

FINISHED = 'finished.json'
# What marked a finished run before FINISHED existed (fusion, Siamese reports); read for
# runs saved before it only.
_OLD_MARKS = ('predictions.csv', 'congruence.csv')


def set_fields(config: ml_collections.ConfigDict, fields: dict[str, Any]
               ) -> ml_collections.ConfigDict:
  """`config` with dotted `fields` set (e.g. {'train.batch_size': 32}), in place; also
  fields a config saved before they existed lacks."""
  for key, value in fields.items():
    *parents, name = key.split('.')
    node = config
    for p in parents:
      node = node[p]
    node[name] = value
  return config


def derive(config: ml_collections.ConfigDict, **fields: Any) -> ml_collections.ConfigDict:
  """A sub-run's config: a copy of `config` with dotted `fields` set (keyword names
  use '__' for '.': derive(c, train__batch_size=32) or derive(c, **{'train.x': 1}))."""
  c = ml_collections.ConfigDict(config.to_dict())
  return set_fields(c, {k.replace('__', '.'): v for k, v in fields.items()})


RUN_FORMAT = 2  # config.json's 'run_format' from the version that writes FINISHED.


def is_finished(workdir: str) -> bool:
  """Whether the run in `workdir` has written its whole report."""
  report = os.path.join(workdir, 'report')
  if os.path.isfile(os.path.join(report, FINISHED)):
    return True
  try:
    with open(os.path.join(workdir, 'config.json')) as f:
      if json.load(f).get('run_format', 1) >= RUN_FORMAT:
        return False
  except (OSError, ValueError):
    pass
  return any(os.path.isfile(os.path.join(report, f)) for f in _OLD_MARKS)


def mark_finished(workdir: str, step: int, results: dict) -> None:
  """Writes FINISHED (atomically): the best step and the report's results."""
  path = os.path.join(workdir, 'report', FINISHED)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump({'best_step': int(step), 'results': results}, f, indent=1, default=float)
  os.replace(tmp, path)


def results(workdir: str) -> dict:
  """The results a finished run's report holds (as `mark_finished` wrote them)."""
  with open(os.path.join(workdir, 'report', FINISHED)) as f:
    return json.load(f)['results']

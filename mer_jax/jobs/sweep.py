"""Job 'sweep': the runs an experiment config declares, one after another (or
`sweep.parallel_runs` at a time, each in its own process: `mer_jax.run_pool`), and the
experiment report (`mer_jax.results`).

`config.sweep` names the ablation models (`mer_jax.variants`: model1 .. model5), the
seeds, the modalities, and the model whose modality ablation is run. Each run trains into `<workdir>/runs/<model>-<modality>-seed<seed>/`.
A rerun skips finished runs (their report exists) and resumes an interrupted one from
its checkpoints; the summary (`mer_jax.results`) is rebuilt from whatever has finished
and lists what is missing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os

import ml_collections

from mer_jax import distributed
from mer_jax import runs as runs_lib
from mer_jax import variants
from mer_jax.jobs import JobResult

MULTI_PROCESS = True  # Its runs are `train.train_and_evaluate`'s; process 0 writes.
PREPARES_DATA = True  # Reads config.data: `jobs.run` checks the release is there first.


@dataclasses.dataclass(frozen=True)
class Run:
  model: str
  modality: str
  seed: int

  @property
  def name(self) -> str:
    return f'{self.model}-{self.modality}-seed{self.seed}'

  @property
  def label(self) -> str:
    """Table row name: the model, with the modality when it is not bimodal."""
    return self.model if self.modality == 'bimodal' else f'{self.model} ({self.modality})'


def main_runs(config: ml_collections.ConfigDict) -> list[Run]:
  """Models x modalities x seeds."""
  s = config.sweep
  return [Run(m, mod, seed) for m in s.models for mod in s.modalities for seed in s.seeds]


def best_model(config: ml_collections.ConfigDict, workdir: str) -> str | None:
  """The model with the lowest mean (over seeds) best validation loss among the main
  runs, once they have all finished; None before. Chosen on validation, not test."""
  import pandas as pd
  scores = {}
  for run in main_runs(config):
    if not is_finished(workdir, run):
      return None
    h = pd.read_csv(os.path.join(run_dir(workdir, run), 'report', 'history.csv'))
    scores.setdefault(run.model, []).append(h.val_loss.min())
  return min(scores, key=lambda m: sum(scores[m]) / len(scores[m])) if scores else None


def runs(config: ml_collections.ConfigDict, workdir: str | None = None) -> list[Run]:
  """Every run of the sweep, in order: the main runs, then the modality ablation of
  `sweep.ablation_model` ('best': the best main model on validation, known once the
  main runs have finished; until then its runs are named 'best-...')."""
  s = config.sweep
  out = main_runs(config)
  model = s.ablation_model
  if model == 'best':
    model = (best_model(config, workdir) if workdir else None) or 'best'
  if model:
    out += [Run(model, mod, seed) for mod in s.ablation_modalities for seed in s.seeds]
  return list(dict.fromkeys(out))


def run_config(config: ml_collections.ConfigDict, run: Run) -> ml_collections.ConfigDict:
  """The experiment config turned into one run's training config."""
  c = variants.apply(runs_lib.derive(config, seed=run.seed, job='train'), run.model)
  c.model.modality = run.modality
  if run.modality == 'audio':
    c.text.trainable = False
  return c


def run_dir(workdir: str, run: Run) -> str:
  return os.path.join(workdir, 'runs', run.name)


def is_finished(workdir: str, run: Run) -> bool:
  return runs_lib.is_finished(run_dir(workdir, run))


def summarize(config: ml_collections.ConfigDict, workdir: str, todo: list[Run]) -> dict:
  """Writes the experiment report from whichever of `todo` have finished; returns
  {'finished': [...], 'missing': [...], 'report': results.md}."""
  from mer_jax import results
  finished = [r for r in todo if is_finished(workdir, r)]
  missing = [r.name for r in todo if r not in finished]
  groups = {}
  for r in finished:
    groups.setdefault(r.label, []).append(run_dir(workdir, r))
  folder = os.path.join(workdir, 'report')
  path = (results.summarize(config, folder, groups, missing)  # Written by process 0.
          if distributed.is_primary() else os.path.join(folder, 'results.md'))
  return {'finished': [r.name for r in finished], 'missing': missing, 'report': path}


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  """Trains every unfinished run (`sweep.parallel_runs` at a time), then writes the
  experiment report."""
  parallel = config.sweep.get('parallel_runs', 1)
  if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
    raise ValueError(f'config.sweep.parallel_runs = {parallel!r}: must be a whole '
                     'number >= 1 (1: one run after another)')
  todo = runs(config, workdir)
  try:
    if parallel > 1:
      todo = _train_side_by_side(config, workdir, todo)
    else:
      todo = _train_in_turn(config, workdir, todo)
  finally:  # Whatever has finished is summarised, also after a failure.
    summary = summarize(config, workdir, todo)
  return JobResult(summary, os.path.abspath(summary['report']), (
      f'{len(summary["finished"])} runs finished, {len(summary["missing"])} missing',))


def _train_in_turn(config: ml_collections.ConfigDict, workdir: str,
                   todo: list[Run]) -> list[Run]:
  from mer_jax import train
  for i, r in enumerate(todo):
    if r.model == 'best':  # The main runs have just finished: pick the model.
      todo = runs(config, workdir)
      r = todo[i]
      logging.info('best model on validation: %s', r.model)
    if is_finished(workdir, r):
      logging.info('[%d/%d] %s: finished, skipped', i + 1, len(todo), r.name)
      continue
    logging.info('[%d/%d] %s: training', i + 1, len(todo), r.name)
    print(f'[{i + 1}/{len(todo)}] {r.name}', flush=True)
    train.train_and_evaluate(run_config(config, r), run_dir(workdir, r))
  return todo


def start_order(todo: list[Run], workers: int) -> list[Run]:
  """The order side-by-side runs start in: runs differing only by seed compile the same
  programs, so the first seed of `workers` such groups goes first, then their second
  seeds, and so on; no two runs of one group start together, and each later seed finds
  the earlier one's compiled steps in the persistent cache (~12 s of XLA compiles per
  demo run). One after another (workers=1) the order stays."""
  groups: dict[tuple[str, str], list[Run]] = {}
  for r in todo:
    groups.setdefault((r.model, r.modality), []).append(r)
  keys = list(groups)
  out = []
  for i in range(0, len(keys), workers):
    chunk = [groups[k] for k in keys[i:i + workers]]
    for j in range(max(len(g) for g in chunk)):
      out += [g[j] for g in chunk if j < len(g)]
  return out


def _train_side_by_side(config: ml_collections.ConfigDict, workdir: str,
                        todo: list[Run]) -> list[Run]:
  """`mer_jax.run_pool`: the runs known now, then the 'best' model's ablation once the
  main runs have ended. The data is prepared here first, so workers only read it."""
  import jax

  from mer_jax import run_pool, tasks, train
  if distributed.wanted(config):
    raise ValueError('sweep.parallel_runs > 1 runs in one machine\'s processes; with '
                     'several JAX processes keep it 1')
  if jax.default_backend() != 'cpu':
    raise ValueError(f'sweep.parallel_runs > 1 shares out CPUs; on '
                     f'{jax.default_backend()} the runs would share one device: keep 1')
  seen = set()
  with run_pool.start_workers(config.sweep.parallel_runs) as pool:
    for phase in ('known', 'best'):
      if phase == 'best':
        todo = runs(config, workdir)
      batch = []
      for r in todo:
        if r.model == 'best' or r in seen:
          continue
        seen.add(r)
        if is_finished(workdir, r):
          logging.info('%s: finished, skipped', r.name)
        else:
          batch.append(r)
      configs = {r: run_config(config, r) for r in batch}
      needs = {}  # Runs alike in data, inputs and text tower fill the same caches.
      for c in configs.values():
        keys = tasks.get_task(c).input_keys
        needs[json.dumps([c.data.to_dict(), keys, c.text.to_dict()], sort_keys=True,
                         default=str)] = (c, keys)
      for c, keys in needs.values():
        train.load_data(c, keys)
      if batch:
        list(run_pool.train_all([(r.name, configs[r], run_dir(workdir, r)) for r in
                                 start_order(batch, config.sweep.parallel_runs)],
                                config.sweep.parallel_runs, pool=pool))
  return todo

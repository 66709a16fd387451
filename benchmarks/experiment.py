"""A whole experiment end to end: `configs/demo_exp1.py` (Models 1-5 x 2 seeds, the best
model's modality ablation, tables and figures) as a user runs it, wall-clock.

    python benchmarks/experiment.py --out=benchmarks/out [--baseline_rev=<git rev>]

Each job runs as `python launch.py --config=<config> --workdir=<fresh folder>` in its
own process, on the data already prepared (one preparation first, not timed), with an
empty compilation cache (MER_JAX_CACHE in a fresh folder): what a user's first run of
the experiment costs. With `--baseline_rev`, the same job is also run from that git
revision of this repository (a `git worktree` in a temporary folder, same data, same
Python environment), so the two are timed on one machine in one run; the jobs alternate
when `--repeats` > 1. Each run's own time is read from its sweep log (per model, seed
and modality). Writes <out>/experiment.csv and .md (benchmarks/common.py) and
<out>/experiment_runs.csv (seconds per training run). Tens of minutes on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import common  # noqa: E402

flags.DEFINE_string('out', 'benchmarks/out', 'Folder for experiment.csv / .md.')
flags.DEFINE_string('config', 'configs/demo_exp1.py', 'The experiment config.')
flags.DEFINE_string('baseline_rev', '', 'A git revision timed side by side (optional).')
flags.DEFINE_integer('repeats', 1, 'Timed jobs per variant.')
flags.DEFINE_list('overrides', [], 'Extra --config.* flags for every job (a smoke run).')
FLAGS = flags.FLAGS

def _job(repo: str, workdir: str, cache: str, data_dir: str) -> tuple[float, dict]:
  """(wall seconds, {run: seconds}) of the experiment job run from `repo`."""
  # Without the caller's GLIBC_TUNABLES: each revision's launch.py sets its own malloc
  # settings (mer_jax/allocator.py) or, before they existed, glibc's defaults.
  env = {**{k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'},
         'HF_HUB_OFFLINE': '1', 'MER_JAX_CACHE': cache,
         'JAX_COMPILATION_CACHE_DIR': '', 'TF_CPP_MIN_LOG_LEVEL': '2'}
  cmd = [sys.executable, os.path.join(repo, 'launch.py'), f'--config={FLAGS.config}',
         f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
         *[f'--config.{o}' for o in FLAGS.overrides]]
  t0 = time.perf_counter()
  done = subprocess.run(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, text=True)
  wall = time.perf_counter() - t0
  if done.returncode:
    sys.exit(f'{repo}: the experiment failed (exit {done.returncode}):\n'
             f'{done.stdout[-3000:]}')
  now = time.localtime()
  end = now.tm_hour * 3600 + now.tm_min * 60 + now.tm_sec
  return wall, common.sweep_run_times(done.stdout, end)


def main(argv):
  del argv
  tmp = tempfile.mkdtemp(prefix='mer_exp_bench_')
  data_dir = os.path.join(tmp, 'prepared')
  repos = {'mer_jax (this tree)': REPO}
  if FLAGS.baseline_rev:
    base = os.path.join(tmp, 'baseline')
    subprocess.run(['git', '-C', REPO, 'worktree', 'add', '--detach', base,
                    FLAGS.baseline_rev], check=True, stdout=subprocess.DEVNULL)
    for d in ('data',):  # The generated demo songs: shared, not regenerated.
      if os.path.isdir(os.path.join(REPO, d)) and not os.path.exists(os.path.join(base, d)):
        os.symlink(os.path.join(REPO, d), os.path.join(base, d))
    repos = {f'baseline {FLAGS.baseline_rev}': base, **repos}
  prep = subprocess.run(
      [sys.executable, '-m', 'data_prep.prepare', f'--config={FLAGS.config}',
       f'--config.data.data_dir={data_dir}'], cwd=REPO,
      env={**os.environ, 'HF_HUB_OFFLINE': '1'}, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  if prep.returncode:
    sys.exit(f'preparation failed:\n{prep.stdout[-3000:]}')
  walls = {k: [] for k in repos}
  runs = []
  try:
    for r in range(FLAGS.repeats):
      for name, repo in repos.items():
        work = os.path.join(tmp, f'job{r}_{len(walls[name])}_{abs(hash(name))}')
        wall, per_run = _job(repo, work, os.path.join(work + '_cache'), data_dir)
        walls[name].append(wall)
        runs += [{'variant': name, 'repeat': r, 'run': k, 'seconds': v}
                 for k, v in per_run.items()]
        print(f'{name}: {wall:.0f} s', flush=True)
  finally:
    if FLAGS.baseline_rev:
      subprocess.run(['git', '-C', REPO, 'worktree', 'remove', '--force',
                      os.path.join(tmp, 'baseline')], check=False)
  bench = f'whole experiment {os.path.basename(FLAGS.config)} (2 cores)'
  first = next(iter(repos))
  rows = []
  for name in repos:
    med = float(np.median(walls[name]))
    rows.append({'benchmark': bench, 'variant': name, 'median_s': med,
                 'unit_per_s': 3600 / med, 'ratio': float(np.median(walls[first])) / med,
                 'baseline_variant': first})
  os.makedirs(FLAGS.out, exist_ok=True)
  pd.DataFrame(runs).to_csv(os.path.join(FLAGS.out, 'experiment_runs.csv'), index=False,
                            float_format='%.1f')
  common.write_table(rows, FLAGS.out, 'experiment',
                     'Whole experiment, wall-clock (per hour = jobs per hour)',
                     unit='per hour')


if __name__ == '__main__':
  app.run(main)

"""Every CPU benchmark in one run: prints one Markdown table of medians and ratios and
writes <out>/results.csv (benchmark,variant,median_s,unit_per_s,ratio,baseline_variant),
<out>/results.md and <out>/checks.json: {benchmark: {check: value}}, the numbers the
benchmarks checked (features.py: its largest difference from librosa, dB, and the bound).

    python benchmarks/run.py --out=benchmarks/out

Runs, each in its own process (clean thread pools and memory):
  features.py    30 s MP3 -> log-mel: librosa serial vs mer_jax vs decode floor;
  train_step.py  Model 4 train step at three widths: JAX vs PyTorch eager/compile;
  epoch.py       frozen-text-tower epoch vs audio-only; input pipeline vs the step;
  checkpoints.py a demo model's per-epoch checkpoint save: Orbax leaf by leaf vs packed;
  packing.py     Model 5's train step (MiniLM fine-tuned): lyrics' real tokens packed vs
                 every padded position;
  frontends.py   30 s MP3 -> musicnn song embedding: the original recipe (librosa +
                 the shipped TF graph) vs mer_jax; an epoch on cached musicnn
                 embeddings vs a VGG epoch;
  pretrain.py    self-supervised pretraining epochs (simclr, masking) vs a supervised
                 epoch at the demo's size, songs/s;
  predict.py     prediction latency/memory (only with --predict_workdir, a demo run);
  experiment.py  configs/demo_exp1.py end to end (only with --experiment: ~30 min;
                 --experiment_baseline=<git rev> also times that revision).
The GPU benchmark is benchmarks/gpu.sh (needs a GPU). 5-8 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pandas as pd
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import common  # noqa: E402

flags.DEFINE_string('out', 'benchmarks/out', 'Folder for results.csv / results.md.')
flags.DEFINE_list('only', [], 'Run these benchmarks only (features, train_step, epoch, '
                  'checkpoints, packing, frontends, pretrain, predict, experiment).')
flags.DEFINE_string('predict_workdir', '', 'A demo training run: adds predict.py.')
flags.DEFINE_bool('experiment', False, 'Adds experiment.py (demo_exp1 end to end).')
flags.DEFINE_string('experiment_baseline', '', 'experiment.py: a git revision timed too.')
flags.DEFINE_bool('quick', False, 'Fewer repeats and songs (a smoke run, not results).')
FLAGS = flags.FLAGS

# (name, script arguments, quick arguments).
BENCHMARKS = (
    ('features', ['--songs=16', '--repeats=5'], ['--songs=2', '--repeats=1']),
    ('train_step', ['--repeats=2'], ['--repeats=1', '--quick']),
    ('epoch', ['--songs=96', '--repeats=2'], ['--songs=24', '--repeats=1']),
    ('checkpoints', ['--repeats=8'], ['--repeats=1']),
    ('packing', ['--repeats=8'], ['--songs=40', '--steps=2', '--repeats=1']),
    ('frontends', ['--songs=8', '--repeats=3', '--epoch_songs=48'],
     ['--songs=2', '--repeats=1', '--epoch_songs=32']),
    ('pretrain', ['--songs=64', '--repeats=3'], ['--songs=16', '--repeats=1']),
    ('predict', ['--songs=8'], ['--songs=2']),
    ('experiment', [], ['--overrides=train.num_epochs=1,sweep.seeds=(0,)']),
)


def main(argv):
  del argv
  if not FLAGS.only or 'train_step' in FLAGS.only:
    common.require_torch()  # Before any benchmark runs, not after minutes of them.
  out = os.path.abspath(FLAGS.out)
  os.makedirs(out, exist_ok=True)
  env = {**os.environ, 'HF_HUB_OFFLINE': '1', 'TF_CPP_MIN_LOG_LEVEL': '2'}
  tables, sections, failed, checks = [], [], [], {}
  for name, args, quick in BENCHMARKS:
    if FLAGS.only and name not in FLAGS.only:
      continue
    if name == 'predict':
      if not FLAGS.predict_workdir:
        continue
      args = args + [f'--workdir={FLAGS.predict_workdir}']
    if name == 'experiment':
      if not FLAGS.experiment:
        continue
      if FLAGS.experiment_baseline:
        args = args + [f'--baseline_rev={FLAGS.experiment_baseline}']
    cmd = [sys.executable, os.path.join(REPO, 'benchmarks', f'{name}.py'), f'--out={out}',
           *(quick if FLAGS.quick else args)]
    print(f'== {name}: {" ".join(cmd[1:])}', flush=True)
    checks_json = common.checks_path(out, name)
    if os.path.exists(checks_json):  # An earlier run's.
      os.remove(checks_json)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    print(f'   {time.perf_counter() - t0:.0f} s, exit {done.returncode}', flush=True)
    csv = os.path.join(out, f'{name}.csv')
    if done.returncode != 0 or not os.path.isfile(csv):
      print(done.stdout[-4000:], file=sys.stderr)
      failed.append(name)
      continue
    with open(os.path.join(out, f'{name}.md')) as f:
      sections.append(f.read())
    print(sections[-1], flush=True)
    if os.path.isfile(checks_json):
      with open(checks_json) as f:
        checks[name] = json.load(f)
    tables.append(pd.read_csv(csv, keep_default_na=False,
                              na_values={c: [''] for c in ('median_s', 'unit_per_s',
                                                          'ratio')}))
  if tables:
    rows = pd.concat(tables).to_dict('records')
    print('== all benchmarks')
    common.write_table(rows, out, 'results', 'mer-jax benchmarks (ratio = speed vs the '
                       'row named in the last column; > 1 is faster)', unit='per s')
    with open(os.path.join(out, 'results.md'), 'a') as f:  # Each with its machine line.
      f.write('\n' + '\n'.join(sections))
    with open(os.path.join(out, 'checks.json'), 'w') as f:
      json.dump(checks, f, indent=1)
  if failed:
    raise SystemExit(f'benchmarks failed: {", ".join(failed)}')


if __name__ == '__main__':
  app.run(main)

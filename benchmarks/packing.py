"""Model 5's train step (MiniLM fine-tuned) with the lyrics' real tokens packed
(mer_jax/packing.py) vs every padded position, side by side.

    python benchmarks/packing.py --out=benchmarks/out

The data is the demo's (configs/demo_exp1.py: `--songs` generated 6 s songs, lyrics
trimmed to their longest, batch 16), prepared under a temporary folder; the state is
the project's own Model 5 TrainState, the steps its own jitted `train_step`, packed into
the run's `packing.training_rows`. Each variant runs the same `--steps` batches per
timing, in turns. Checks: the first step's loss and gradient norm (one initial state,
one batch, one dropout rng) agree to float rounding (relative differences). Writes
<out>/packing.csv and .md (benchmarks/common.py).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from benchmarks import common  # noqa: E402
from mer_jax import (augment, input_pipeline, packing, runs, tasks, train,  # noqa: E402
                     variants)

FLAGS = flags.FLAGS
flags.DEFINE_string('out', 'benchmarks/out', 'Folder for packing.csv/.md.')
flags.DEFINE_integer('songs', 300, 'Generated demo songs (70 % train).')
flags.DEFINE_integer('steps', 6, 'Train steps per timing.')
flags.DEFINE_integer('repeats', 8, 'Timings per variant, in turns.')
MAX_REL_DIFF = 1e-5  # Float rounding, not another computation.


def main(argv):
  del argv
  from configs import demo_exp1
  root = tempfile.mkdtemp(prefix='mer_packing_bench_')
  try:
    config = variants.apply(runs.derive(demo_exp1.get_config(), seed=0, job='train'),
                            'model5')
    config.data.root = os.path.join(root, 'songs')
    config.data.data_dir = os.path.join(root, 'prepared')
    config.data.synthetic.num_songs = FLAGS.songs
    task = tasks.get_task(config)
    keys = task.input_keys
    data = train.load_data(config, keys)
    rows = packing.training_rows(config, data.splits['train'], data.n_train,
                                 input_pipeline.epoch_order)
    width = data.text_length
    bs = config.train.batch_size
    mesh = train.make_mesh()
    put = functools.partial(train.device_batch, keys=keys,
                            sharding=NamedSharding(mesh, P('data')))
    batches = [put(b) for b in input_pipeline.train_batches(
        data.splits['train'], data.n_train, bs, config.seed, 0)][:FLAGS.steps]
    step = jax.jit(functools.partial(train.train_step, loss_fn=task.loss_fn,
                                     augment_fn=augment.batch_fn(config, keys)),
                   donate_argnums=0)
    kinds = {f'packed ({rows} rows)': rows, f'unpacked ({bs} x {width} rows)': 0}
    states, firsts = {}, {}
    for name, r in kinds.items():
      state = jax.device_put(train.initial_state(config, task, data, 1000, r),
                             NamedSharding(mesh, P()))
      state, m = step(state, batches[0], jax.random.key(0))  # Compiles.
      firsts[name] = np.array([float(m.loss.compute()), float(m.grad_norm.compute())])
      states[name] = state

    def run(name):
      def steps():
        s = states[name]
        for b in batches:
          s, m = step(s, b, jax.random.key(0))
        jax.block_until_ready(m.loss.compute())
        states[name] = s
      return steps
    t = common.interleaved_medians({k: run(k) for k in kinds}, FLAGS.repeats)
  finally:
    shutil.rmtree(root, ignore_errors=True)
  a, b = firsts.values()
  diff = np.abs(a - b) / np.abs(b)
  common.write_checks(FLAGS.out, 'packing', {
      'rel_diff_loss': float(diff[0]), 'rel_diff_grad_norm': float(diff[1]),
      'bound': MAX_REL_DIFF})
  if not diff.max() <= MAX_REL_DIFF:
    raise SystemExit(f'the packed first step differs from the unpacked one: loss and '
                     f'gradient norm {a} vs {b}')
  base = f'unpacked ({bs} x {width} rows)'
  table = [{'benchmark': f'train_step Model 5 (MiniLM fine-tuned) batch {bs}, demo lyrics',
            'variant': k, 'median_s': v / len(batches), 'unit_per_s': len(batches) / v,
            'ratio': t[base] / v, 'baseline_variant': base} for k, v in t.items()]
  common.write_table(table, FLAGS.out, 'packing',
                     f'Model 5 train step, lyrics packed ({time.strftime("%Y-%m-%d %H:%M")})',
                     unit='steps/s')


if __name__ == '__main__':
  app.run(main)

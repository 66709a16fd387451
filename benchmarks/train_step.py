"""Audio-tower training step on this machine: XLA's convolution gradients vs the
project's (`mer_jax.conv`, the default), side by side, at three widths of Model 4.

    python benchmarks/train_step.py --out=benchmarks/out

Times forward + backward of the VGG (30 s log-mels, 128 x 1292) on in-memory random
batches, medians of `--repeats` steps after a compile step. Prints a Markdown table and
writes <out>/train_step.csv and .md (benchmarks/common.py).
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import common  # noqa: E402
from mer_jax import vgg  # noqa: E402

flags.DEFINE_string('out', 'benchmarks/out', 'Folder for train_step.csv / .md.')
flags.DEFINE_integer('repeats', 3, 'Timed steps per variant.')
FLAGS = flags.FLAGS

# (name, widths, batch): the demo's, a middle and the thesis's full width.
SETTINGS = (('8/16/32/64', (8, 16, 32, 64), 16), ('16/32/64/128', (16, 32, 64, 128), 16),
            ('64/128/256/512 (full)', (64, 128, 256, 512), 2))


def _step_time(widths, batch, impl, repeats) -> tuple[float, float]:
  model = vgg.VGG(widths=widths, conv_impl=impl)
  mel = jnp.asarray(np.random.default_rng(0).uniform(-80, 0, (batch, 128, 1292)),
                    jnp.float32)
  v = model.init(jax.random.key(0), mel)

  def loss(p, stats):
    out, upd = model.apply({'params': p, 'batch_stats': stats}, mel, train=True,
                           rngs={'dropout': jax.random.key(1)}, mutable=['batch_stats'])
    return jnp.mean(out ** 2), upd

  step = jax.jit(jax.value_and_grad(loss, has_aux=True))
  (value, _), _ = jax.block_until_ready(step(v['params'], v['batch_stats']))
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(step(v['params'], v['batch_stats']))
    times.append(time.perf_counter() - t0)
  return float(np.median(times)), float(value)


def main(argv):
  del argv
  rows = []
  for name, widths, batch in SETTINGS:
    base, base_loss = _step_time(widths, batch, 'xla', FLAGS.repeats)
    mine, my_loss = _step_time(widths, batch, 'auto', FLAGS.repeats)
    assert abs(my_loss - base_loss) <= 1e-5 * max(1.0, abs(base_loss)), (my_loss, base_loss)
    for variant, t in (('xla conv gradients', base), ('mer_jax.conv (default)', mine)):
      rows.append({'benchmark': f'train_step {name} batch {batch}', 'variant': variant,
                   'median_s': t, 'unit_per_s': batch / t, 'ratio': base / t,
                   'baseline_variant': 'xla conv gradients'})
  common.write_table(rows, FLAGS.out, 'train_step',
                     f'Audio-tower train step ({jax.default_backend()}, {os.cpu_count()} '
                     'cores, forward + backward, 128 x 1292 log-mels)', unit='songs/s')


if __name__ == '__main__':
  app.run(main)

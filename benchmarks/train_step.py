"""Audio-tower training step, JAX vs PyTorch, at three widths of Model 4.

    python benchmarks/train_step.py --out=benchmarks/out

One step = forward (train mode: BatchNorm batch statistics, dropout) + backward + Adam
update of the VGG (30 s log-mels, 128 x 1292, in-memory random batch), the same model and
batch in:
  - jax: mer_jax.vgg.VGG as the project trains it (jitted, state donated; on CPU the
    convolutions run on oneDNN through mer_jax.onednn, and the pooling gradient goes
    through mer_jax.pooling);
  - jax, XLA convolutions: the same without oneDNN (mer_jax.conv's XLA path: what runs
    without a C++ compiler or with MER_JAX_ONEDNN=0);
  - jax, xla conv/pool gradients: the same with `conv_impl='xla'` (plain Flax: XLA's
    own convolution and max-pool gradients);
  - torch eager: benchmarks/torch_vgg.py (torch 2.13.0 CPU, the thesis's framework);
  - torch.compile: the same step compiled (inductor).
Medians of `--repeats` steps after warm-up steps (compilation excluded), the variants
timed in turns. Ratios are songs/s against torch eager. Writes
<out>/train_step.csv and .md (benchmarks/common.py).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import contextlib  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import common  # noqa: E402
from mer_jax import onednn, vgg  # noqa: E402

flags.DEFINE_string('out', 'benchmarks/out', 'Folder for train_step.csv / .md.')
flags.DEFINE_integer('repeats', 3, 'Timed steps per variant.')
flags.DEFINE_bool('torch_compile', True, 'Also time torch.compile (adds its compile time).')
flags.DEFINE_bool('quick', False, 'Tiny widths, 64 frames, no torch.compile: a smoke run.')
FLAGS = flags.FLAGS

# (name, widths, batch): the demo's, a middle and the thesis's full width.
SETTINGS = (('8/16/32/64', (8, 16, 32, 64), 16), ('16/32/64/128', (16, 32, 64, 128), 16),
            ('64/128/256/512 (full)', (64, 128, 256, 512), 2))
QUICK_SETTINGS = (('4/8/8/16 (quick)', (4, 8, 8, 16), 4),)
MELS, FRAMES = 128, 1292


def _batch(batch: int) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(0)
  frames = 64 if FLAGS.quick else FRAMES
  return (rng.uniform(-80, 0, (batch, MELS, frames)).astype(np.float32),
          rng.uniform(-1, 1, (batch, 64)).astype(np.float32))


@contextlib.contextmanager
def _without_onednn():
  """Traces inside take mer_jax.conv's XLA path (oneDNN is chosen at trace time)."""
  usable = onednn.usable
  onednn.usable = lambda x, w: False
  try:
    yield
  finally:
    onednn.usable = usable


def jax_step(widths, batch: int, impl: str, use_onednn: bool = True):
  """A compiled, warmed-up JAX train step (a no-argument callable)."""
  model = vgg.VGG(widths=widths, conv_impl=impl)
  mel, target = (jnp.asarray(a) for a in _batch(batch))
  v = model.init(jax.random.key(0), mel)
  tx = optax.adam(1e-4)
  state = (v['params'], v['batch_stats'], tx.init(v['params']), jnp.zeros((), jnp.int32))

  def step(state, mel, target):
    params, stats, opt, i = state

    def loss(p):
      out, upd = model.apply({'params': p, 'batch_stats': stats}, mel, train=True,
                             rngs={'dropout': jax.random.fold_in(jax.random.key(1), i)},
                             mutable=['batch_stats'])
      return jnp.mean((out - target) ** 2), upd['batch_stats']

    (value, stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt = tx.update(grads, opt, params)
    return (optax.apply_updates(params, updates), stats, opt, i + 1), value

  step = jax.jit(step, donate_argnums=0)
  box = [state]

  def run():
    box[0], value = step(box[0], mel, target)
    jax.block_until_ready(value)

  with contextlib.nullcontext() if use_onednn else _without_onednn():
    run()  # Compiles.
  return run


def torch_step(widths, batch: int, compiled: bool):
  """A warmed-up PyTorch train step (eager or torch.compile'd), a no-argument callable."""
  import torch
  from benchmarks import torch_vgg
  torch.manual_seed(0)
  model = torch_vgg.TorchVGG(widths=widths).train()
  opt = torch.optim.Adam(model.parameters(), lr=1e-4)
  mel, target = (torch.from_numpy(a) for a in _batch(batch))

  def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.mean((model(mel) - target) ** 2)
    loss.backward()
    opt.step()
    return loss

  if compiled:
    step = torch.compile(step)
  for _ in range(2 if compiled else 1):  # torch.compile compiles on its first calls.
    float(step())
  return lambda: float(step())


def main(argv):
  del argv
  common.require_torch()
  import torch
  rows = []
  for name, widths, batch in QUICK_SETTINGS if FLAGS.quick else SETTINGS:
    steps = {'torch eager': torch_step(widths, batch, False)}
    if FLAGS.torch_compile and not FLAGS.quick:
      steps['torch.compile'] = torch_step(widths, batch, True)
    steps['jax, xla conv/pool gradients'] = jax_step(widths, batch, 'xla')
    if onednn.available():
      steps['jax (mer_jax), XLA convolutions'] = jax_step(widths, batch, 'auto', False)
    steps['jax (mer_jax)'] = jax_step(widths, batch, 'auto')
    times = common.interleaved_medians(steps, FLAGS.repeats)
    del steps
    for variant, t in times.items():
      rows.append({'benchmark': f'train_step Model 4 {name} batch {batch}',
                   'variant': variant, 'median_s': t, 'unit_per_s': batch / t,
                   'ratio': times['torch eager'] / t, 'baseline_variant': 'torch eager'})
  common.write_table(
      rows, FLAGS.out, 'train_step',
      f'Audio-tower train step (fwd + bwd + Adam; {jax.default_backend()}, '
      f'{os.cpu_count()} cores; jax {jax.__version__}, torch {torch.__version__}; '
      f'{MELS} x {FRAMES} log-mels)', unit='songs/s')


if __name__ == '__main__':
  app.run(main)

"""The benchmarks compare like with like: the PyTorch VGG is the Flax VGG (same outputs
and gradients from the same weights), and the runner's table is self-consistent."""

import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks import common, torch_vgg
from mer_jax import vgg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('train', [False, True])
def test_torch_vgg_equals_flax_vgg(train):
  rng = np.random.default_rng()
  widths = (4, 8, 8, 16)
  flax_model = vgg.VGG(widths=widths, hidden=12, out_dim=8, dropout=0.0)
  torch_model = torch_vgg.TorchVGG(widths=widths, hidden=12, out_dim=8, dropout=0.0)
  mel = rng.uniform(-80, 0, (3, 32, 40)).astype(np.float32)
  v = flax_model.init(jax.random.key(int(rng.integers(1 << 30))), mel)
  # Non-trivial BatchNorm statistics and affine parameters (and attention gate). Conv
  # and dense kernels keep their initialisation: shifting every weight by +0.1*U(0,1)
  # made eval-mode activations grow ~40x per layer (outputs ~1e3, gradients ~1e7), and
  # float32 summation order then decided the comparison, not the code under test.
  def perturb(path, x):
    if any(getattr(k, 'key', '').startswith(('bn', 'attention')) for k in path):
      return x + 0.1 * jnp.asarray(rng.random(x.shape), x.dtype)
    return x
  v = jax.tree_util.tree_map_with_path(perturb, v)
  torch_vgg.load_flax_params(torch_model, v)
  torch_model.train(train)

  def loss(p):
    out = flax_model.apply({'params': p, 'batch_stats': v['batch_stats']}, mel,
                           train=train, mutable=['batch_stats'] if train else False)
    out = out[0] if train else out
    return jnp.sum(out ** 2), out

  (_, want), grads = jax.value_and_grad(loss, has_aux=True)(v['params'])
  x = torch.from_numpy(mel)
  got = torch_model(x)
  (got ** 2).sum().backward()
  # Float32 sums of terms up to the outputs' scale: an output that cancels to a small
  # value carries the rounding of the large terms, so the tolerance is relative to the
  # largest output.
  np.testing.assert_allclose(got.detach().numpy(), want, rtol=2e-4,
                             atol=1e-5 * float(np.abs(want).max()))
  for name in ('conv0_0', 'conv3_1'):
    conv = [m for m in torch_model.features if isinstance(m, torch.nn.Conv2d)][
        int(name[4]) * 2 + int(name[6])]
    scale = float(jnp.max(jnp.abs(grads[name]['kernel'])))
    np.testing.assert_allclose(conv.weight.grad.numpy().transpose(2, 3, 1, 0),
                               grads[name]['kernel'], atol=1e-4 * scale, rtol=1e-3)
  np.testing.assert_allclose(torch_model.fc_out.weight.grad.numpy().T,
                             grads['fc_out']['kernel'], rtol=1e-3, atol=1e-5)


def test_runner_table_is_consistent(tmp_path):
  out = tmp_path / 'bench'
  done = subprocess.run(
      [sys.executable, os.path.join(REPO, 'benchmarks', 'run.py'), f'--out={out}',
       '--quick', '--only=features,train_step'], cwd=REPO, capture_output=True, text=True,
      env={**os.environ, 'HF_HUB_OFFLINE': '1'})
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  table = pd.read_csv(out / 'results.csv', keep_default_na=False)
  assert tuple(table.columns) == common.COLUMNS
  assert set(table['benchmark']) == {'features 30 s MP3 -> log-mel',
                                     'train_step Model 4 4/8/8/16 (quick) batch 4'}
  assert (table['median_s'] > 0).all() and (table['unit_per_s'] > 0).all()
  times = {(r.benchmark, r.variant): r.median_s for r in table.itertuples()}
  for r in table.itertuples():  # Each ratio is the baseline's time over the row's.
    assert r.ratio == pytest.approx(times[(r.benchmark, r.baseline_variant)] / r.median_s,
                                    rel=1e-3)
  variants = set(table['variant'])
  assert {'torch eager', 'jax (mer_jax)', 'jax, xla conv/pool gradients',
          'librosa, one song at a time (thesis)'} <= variants
  assert '| ratio |' in (out / 'results.md').read_text()
  # The features benchmark's measured difference from librosa, as a value.
  checks = json.loads((out / 'checks.json').read_text())
  assert set(checks) == {'features'}
  diff, bound = (checks['features'][k] for k in ('librosa_max_abs_diff_db',
                                                 'librosa_bound_db'))
  assert bound == 1e-3  # benchmarks/features.py's MAX_DIFF_DB (not imported: absl flags).
  assert math.isfinite(diff) and 0 <= diff <= bound


def test_runner_without_torch_says_what_to_install(tmp_path):
  """With PyTorch not installed (hidden here), the runner stops before any benchmark,
  with one line naming the requirements file, not a ModuleNotFoundError."""
  code = ("import runpy, sys; sys.modules['torch'] = None; "
          f"sys.argv = ['run.py', '--out={tmp_path / 'out'}']; "
          "runpy.run_path('benchmarks/run.py', run_name='__main__')")
  done = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                        text=True, timeout=120)
  assert done.returncode == 1
  assert done.stderr.strip() == common.TORCH_MISSING
  assert 'Traceback' not in done.stdout + done.stderr
  assert not (tmp_path / 'out').exists()  # Nothing ran.


def test_experiment_reads_each_runs_time_from_the_sweep_log():
  log = '\n'.join([
      'I1203 23:59:50.500000 1 sweep.py:121] [1/3] model1-bimodal-seed0: training',
      'I1203 23:59:55.000000 1 train.py:344] epoch 1/1: train loss 0.1',
      'I1204 00:00:10.250000 1 sweep.py:121] [2/3] model1-bimodal-seed1: training',
      'I1204 00:01:00.000000 1 sweep.py:121] [3/3] model2-audio-seed0: training'])
  times = common.sweep_run_times(log, end=75.0)  # 00:01:15.
  assert times == pytest.approx({'model1-bimodal-seed0': 19.75,  # Across midnight.
                                 'model1-bimodal-seed1': 49.75,
                                 'model2-audio-seed0': 15.0})
  parallel = '\n'.join([  # sweep.parallel_runs = 2: each run's own time, in end order.
      '2 runs, 2 at a time, each logging to <its workdir>/train.log',
      '[1/2] model1-bimodal-seed1: finished in 27 s',
      '[2/2] model1-bimodal-seed0: finished in 31 s'])
  assert common.sweep_run_times(parallel, end=75.0) == {'model1-bimodal-seed1': 27.0,
                                                        'model1-bimodal-seed0': 31.0}

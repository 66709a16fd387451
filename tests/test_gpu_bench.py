"""benchmarks/gpu_bench.py on a CPU with tiny models: its tables are self-consistent, it
imports nothing heavy, the step it times is a real train step, and its FLOPs are right."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from benchmarks import common, gpu_bench
from mer_jax import onednn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ('tensorflow', 'tensorflow_datasets', 'clu', 'ml_collections', 'librosa', 'torch')
ENV = {**os.environ, 'HF_HUB_OFFLINE': '1', 'JAX_PLATFORMS': 'cpu'}


def _check(done):
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
  return done.stdout


def test_tiny_run_writes_consistent_tables(tmp_path):
  # The default path: one process per setting.
  _check(subprocess.run(
      [sys.executable, 'benchmarks/gpu_bench.py', '--tiny', f'--out={tmp_path}',
       '--steps=3', '--warmup=1'], cwd=REPO, env=ENV, capture_output=True, text=True))
  table = pd.read_csv(tmp_path / 'gpu.csv', keep_default_na=False)
  assert tuple(table.columns) == common.COLUMNS
  assert set(zip(table['benchmark'], table['variant'])) == {
      (f'Model {m} train step, batch 4', v) for m in (4, 5) for v in ('fp32', 'bf16')}
  assert (table['median_s'] > 0).all() and np.isfinite(table['median_s']).all()
  np.testing.assert_allclose(table['unit_per_s'], 4 / table['median_s'], rtol=1e-4)
  times = {(r.benchmark, r.variant): r.median_s for r in table.itertuples()}
  for r in table.itertuples():  # bf16 rows: fp32 time / bf16 time; fp32 rows: 1.
    assert r.baseline_variant == 'fp32'
    assert r.ratio == pytest.approx(times[(r.benchmark, 'fp32')] / r.median_s, rel=1e-4)
  detail = pd.read_csv(tmp_path / 'gpu_detail.csv')
  assert len(detail) == 4 and (detail['model_tflops_per_step'] > 0).all()
  per_step = detail['model_tflops_per_step']
  np.testing.assert_allclose(detail['achieved_tflops'],
                             per_step * detail['samples_per_s'] / 4, rtol=1e-4)
  # CPU: no peak FLOP/s (MFU) nor memory statistics.
  assert detail['mfu'].isna().all() and detail['peak_memory_gib'].isna().all()
  assert '| MFU |' in (tmp_path / 'gpu_detail.md').read_text()


def test_imports_nothing_heavy():
  code = ('import sys; from benchmarks import gpu_bench as g; '
          "r = g.run_setting('m5-bfloat16-b4', g.TINY, steps=1, warmup=0); "
          "assert r['status'] == 'ok' and r['median_s'] > 0, r; "
          f'print(sorted(m for m in {HEAVY!r} if m in sys.modules))')
  out = _check(subprocess.run([sys.executable, '-c', code], cwd=REPO, env=ENV,
                              capture_output=True, text=True))
  assert out.strip().splitlines()[-1] == '[]'


@pytest.fixture(scope='module')
def m4_step():
  """Model 4 (tiny, float32, batch 4) as the script builds it, and its compiled step,
  with XLA's convolutions, as on a GPU: on CPU they would be oneDNN custom calls, whose
  FLOPs XLA does not count."""
  model = gpu_bench.build_model('m4', 'float32', gpu_bench.TINY)
  inputs, targets = gpu_bench.synthetic_batch('m4', 4, gpu_bench.TINY)
  state = gpu_bench.create_state(model, 'm4', inputs)
  state, inputs, targets = gpu_bench.place(state, inputs, targets)
  rng = jax.random.key(1)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(onednn, 'usable', lambda x, w: False)
    compiled = gpu_bench.make_step(model).lower(state, inputs, targets, rng).compile()
  return model, state, inputs, targets, rng, compiled


def test_timed_step_is_a_train_step(m4_step):
  model, state, inputs, targets, rng, compiled = m4_step
  params, stats = jax.device_get((state.params, state.batch_stats))  # State is donated.
  # Independently: the train-mode forward pass with step 0's dropout key.
  out, upd = jax.jit(lambda v, x: model.apply(
      v, x, train=True, mutable=['batch_stats'],
      rngs={'dropout': jax.random.fold_in(rng, 0)}))(
          {'params': params, 'batch_stats': stats}, inputs)
  want = np.mean((np.asarray(out, np.float64) - np.asarray(targets)) ** 2)
  new, loss = compiled(state, inputs, targets, rng)
  assert float(loss) == pytest.approx(want, rel=1e-5)
  assert int(new.step) == 1
  for a, b in zip(jax.tree.leaves(new.batch_stats), jax.tree.leaves(upd['batch_stats'])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # Adam's first update moves every parameter with a gradient by ~lr = 1e-4.
  deltas = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(np.asarray(a) - b),
                                        new.params, params))
  moved = np.concatenate([d.ravel() for d in deltas])
  assert np.median(moved) == pytest.approx(1e-4, rel=0.05)
  assert moved.max() < 1.01e-4


def test_flops_are_xla_counts_of_the_whole_step(m4_step):
  m, k, n = 16, 32, 8
  dense = jax.jit(jnp.dot).lower(jnp.ones((m, k)), jnp.ones((k, n))).compile()
  assert gpu_bench.step_flops(dense) == 2 * m * k * n
  # The step's convolutions by hand: forward F, weight gradients F, input gradients F
  # less the first layer's (the log-mel needs none); BatchNorm, Adam etc. add < F.
  s, batch = gpu_bench.TINY, 4
  h, w, c_in, fwd, first = s.mels, s.frames, 1, 0, None
  for c in s.widths:
    for _ in range(2):  # Model 4: two convolutions per block.
      fwd += 2 * batch * h * w * 9 * c_in * c
      first, c_in = first or fwd, c
    h, w = h // 2, w // 2
  assert 3 * fwd - first <= gpu_bench.step_flops(m4_step[-1]) <= 4 * fwd


def test_peaks_oom_and_table_of_failed_settings(tmp_path, monkeypatch):
  assert gpu_bench.peak_flops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989e12
  assert gpu_bench.peak_flops('NVIDIA H100 PCIe', 'float32') == 378e12
  assert gpu_bench.peak_flops('NVIDIA H200', 'float32') == 494.7e12
  assert np.isnan(gpu_bench.peak_flops('cpu', 'bfloat16'))

  def oom(*args, **kwargs):
    raise RuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to allocate')
  monkeypatch.setattr(gpu_bench, 'build_model', oom)
  r = gpu_bench.run_setting('m5-bfloat16-b64', gpu_bench.TINY, steps=1, warmup=0)
  assert r['status'] == 'OOM'
  ok = {'setting': 'm5-float32-b64', 'status': 'ok', 'median_s': 2.0, 'flops': 4e12,
        'device_kind': 'NVIDIA H100 80GB HBM3', 'peak_gib': 70.0}
  gpu_bench.write_tables([ok, r], str(tmp_path))
  table = pd.read_csv(tmp_path / 'gpu.csv')
  assert list(table['variant']) == ['fp32', 'bf16 (OOM)']
  assert table['unit_per_s'][0] == 32 and np.isnan(table['median_s'][1])
  detail = pd.read_csv(tmp_path / 'gpu_detail.csv')
  assert detail['mfu'][0] == pytest.approx(2e12 / 494.7e12, rel=1e-5)
  assert detail['peak_memory_gib'][0] == 70

  monkeypatch.setattr(gpu_bench, 'build_model', lambda *a: 1 / 0)
  with pytest.raises(ZeroDivisionError):  # Other errors are not hidden.
    gpu_bench.run_setting('m4-float32-b4', gpu_bench.TINY, steps=1, warmup=0)

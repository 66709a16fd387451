"""Train-step throughput, model FLOPs utilisation (MFU) and peak memory of Models 4 and 5
on one accelerator (benchmarks/gpu.sh runs it; `--tiny` runs it on a CPU in seconds).

    python benchmarks/gpu_bench.py --out=benchmarks/out/gpu [--tiny]

Settings: Model 4 (VGG audio tower + frozen 384-d lyrics embedding) and Model 5 (VGG as
configs/model5.py + a fine-tuned bert-base-sized TextTower, random init, 256 tokens =
config.text.max_length), each in float32 and bfloat16 compute (float32 params), at
batch 32 and 64. A step is forward (train mode) + MSE backward + Adam (Model 5: gradient
clipping as its config) on an in-memory random batch, jitted with the state donated and
the batch sharded over a 'data' mesh axis. Per setting: compile once, `--warmup` steps,
median of `--steps` timed steps. Each setting runs in its own process (so the peak
memory, of the first device, is the setting's own); one that runs out of memory is
recorded as OOM.

Model FLOPs per step are XLA's cost analysis of the compiled step: the FLOPs of its HLO,
forward + backward + optimizer. MFU = those FLOPs / median step time / the dense peak
FLOP/s of the devices (PEAK_FLOPS; unknown device or CPU: NaN). float32 is held against
the TF32 peak: JAX's default precision lets XLA run float32 matmuls and convolutions on
TF32 tensor cores (Ampere and later).

Writes <out>/gpu.csv/.md (benchmarks/common.py: samples/s, ratio = bf16 speed-up over
float32 at the same model and batch) and <out>/gpu_detail.csv/.md (FLOPs, MFU, memory).
Imports only jax, flax, optax, transformers (Model 5), numpy, pandas and absl.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import sys
import time
from typing import Any

# Before transformers is imported: no torch/TF import, no download.
for _k, _v in (('USE_TORCH', '0'), ('USE_TF', '0'), ('HF_HUB_OFFLINE', '1')):
  os.environ.setdefault(_k, _v)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import pandas as pd  # noqa: E402
from flax.training import train_state  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from benchmarks import common  # noqa: E402

# Dense peak FLOP/s by device_kind substring (first match): bf16 and TF32 tensor cores.
PEAK_FLOPS = (('H100 PCIe', {'bfloat16': 756e12, 'float32': 378e12}),
              ('H100', {'bfloat16': 989e12, 'float32': 494.7e12}),
              ('H200', {'bfloat16': 989e12, 'float32': 494.7e12}),
              ('A100', {'bfloat16': 312e12, 'float32': 156e12}))
DTYPES = {'float32': 'fp32', 'bfloat16': 'bf16'}
MODELS = {'m4': 'Model 4', 'm5': 'Model 5'}
TEXT_DIM = 384  # Frozen MiniLM embedding (Model 4).
DETAIL_FORMATS = ('s', '.2f', '.4g', '.4g', '.1%', '.2f', '.1f')  # gpu_detail.md columns.


@dataclasses.dataclass(frozen=True)
class Sizes:
  widths: tuple = (64, 128, 256, 512)
  mels: int = 128
  frames: int = 1292  # 30 s log-mels.
  bert_layers: int = 12  # bert-base.
  bert_hidden: int = 768
  bert_heads: int = 12
  bert_vocab: int = 30522
  max_length: int = 256  # configs/default.py config.text.max_length.


TINY = Sizes(widths=(4, 8), mels=32, frames=64, bert_layers=1, bert_hidden=32,
             bert_heads=2, bert_vocab=1000, max_length=16)


class TrainState(train_state.TrainState):
  batch_stats: Any


def build_model(model: str, dtype: str, sizes: Sizes):
  """Model 4 or 5 ('m4'/'m5') as FusionRegressor with `dtype` compute."""
  from mer_jax import models, vgg
  dt = jnp.dtype(dtype)
  if model == 'm4':  # configs/model4.py
    audio = vgg.VGG(widths=sizes.widths, convs_per_block=2, dropout=0.5,
                    attention='hidden', dtype=dt)
    return models.FusionRegressor(audio=audio, text=None, dtype=dt)
  from transformers import BertConfig
  from mer_jax import bert
  # configs/model5.py: Model 3's audio tower (1 conv per block, attention on the output).
  audio = vgg.VGG(widths=sizes.widths, convs_per_block=1, dropout=0.0, attention='output',
                  dtype=dt)
  cfg = BertConfig(vocab_size=sizes.bert_vocab, hidden_size=sizes.bert_hidden,
                   num_hidden_layers=sizes.bert_layers,
                   num_attention_heads=sizes.bert_heads,
                   intermediate_size=4 * sizes.bert_hidden,
                   max_position_embeddings=max(512, sizes.max_length))
  return models.FusionRegressor(audio=audio, text=bert.TextTower(cfg, dtype=dt), dtype=dt)


def synthetic_batch(model: str, batch: int, sizes: Sizes, seed: int = 0):
  """(inputs dict, targets float32 [batch, 2] in 0..1), numpy."""
  rng = np.random.default_rng(seed)
  mel = rng.uniform(-80, 0, (batch, sizes.mels, sizes.frames)).astype(np.float32)
  inputs = {'mel': mel}
  if model == 'm4':
    inputs['lyrics_emb'] = rng.normal(size=(batch, TEXT_DIM)).astype(np.float32)
  else:
    length = sizes.max_length
    inputs['token_ids'] = rng.integers(1, sizes.bert_vocab, (batch, length), np.int32)
    lens = rng.integers(length // 2, length + 1, batch)
    inputs['attention_mask'] = (np.arange(length) < lens[:, None]).astype(np.int32)
  return inputs, rng.uniform(0, 1, (batch, 2)).astype(np.float32)


def create_state(model, model_name: str, inputs) -> TrainState:
  """Random init, Adam 1e-4 on all parameters."""
  # rbg: values are irrelevant here and it compiles ~5x faster than threefry on CPU.
  variables = jax.jit(model.init)(jax.random.key(0, impl='rbg'), inputs)
  tx = optax.adam(1e-4)
  if model_name == 'm5':  # configs/model5.py: grad_clip_norm = 1.0.
    tx = optax.chain(optax.clip_by_global_norm(1.0), tx)
  return TrainState.create(apply_fn=model.apply, params=variables['params'],
                           batch_stats=variables.get('batch_stats', {}), tx=tx)


def make_step(model):
  """(state, inputs, targets, rng) -> (new state, MSE loss); jitted, state donated."""
  def step(state, inputs, targets, rng):
    def loss_fn(params):
      out, upd = model.apply({'params': params, 'batch_stats': state.batch_stats}, inputs,
                             train=True, mutable=['batch_stats'],
                             rngs={'dropout': jax.random.fold_in(rng, state.step)})
      return jnp.mean((out.astype(jnp.float32) - targets) ** 2), upd['batch_stats']
    (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads, batch_stats=stats), loss
  return jax.jit(step, donate_argnums=0)


def place(state, inputs, targets):
  """State replicated, batch split over the 'data' axis of all devices."""
  mesh = jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))
  data = NamedSharding(mesh, P('data'))
  return (jax.device_put(state, NamedSharding(mesh, P())),
          jax.device_put(inputs, data), jax.device_put(targets, data))


def step_flops(compiled) -> float:
  """FLOPs of a compiled function by XLA's cost analysis (NaN if it has none)."""
  ca = compiled.cost_analysis()
  if isinstance(ca, (list, tuple)):  # One dict per module in older jax versions.
    ca = ca[0] if ca else None
  return float(ca.get('flops', np.nan)) if ca else np.nan


def peak_flops(device_kind: str, dtype: str) -> float:
  for key, peaks in PEAK_FLOPS:
    if key.lower() in device_kind.lower():
      return peaks[dtype]
  return np.nan


def run_setting(name: str, sizes: Sizes, steps: int, warmup: int) -> dict:
  """Times one setting 'm4-float32-b32'; returns its result (status 'ok' or 'OOM')."""
  model_name, dtype, b = name.split('-')
  batch = int(b[1:])
  dev = jax.devices()[0]
  res = {'setting': name, 'model': model_name, 'dtype': dtype, 'batch': batch,
         'device_kind': dev.device_kind, 'backend': jax.default_backend(),
         'jax': jax.__version__, 'devices': jax.device_count(), 'status': 'ok'}
  try:
    model = build_model(model_name, dtype, sizes)
    inputs, targets = synthetic_batch(model_name, batch, sizes)
    state = create_state(model, model_name, inputs)
    state, inputs, targets = place(state, inputs, targets)
    rng = jax.random.key(1)
    t0 = time.perf_counter()
    compiled = make_step(model).lower(state, inputs, targets, rng).compile()
    res['compile_s'] = time.perf_counter() - t0
    res['flops'] = step_flops(compiled)
    times = []
    for i in range(warmup + steps):
      t0 = time.perf_counter()
      state, loss = compiled(state, inputs, targets, rng)
      jax.block_until_ready((state, loss))
      if i >= warmup:
        times.append(time.perf_counter() - t0)
    res['median_s'] = float(np.median(times))
    res['loss'] = float(loss)
  except Exception as e:  # XlaRuntimeError; its type moved between jax versions.
    if 'RESOURCE_EXHAUSTED' not in str(e) and 'out of memory' not in str(e).lower():
      raise
    res['status'] = 'OOM'
  stats = dev.memory_stats() or {}
  res['peak_gib'] = stats.get('peak_bytes_in_use', np.nan) / 2**30
  return res


def run_isolated(name: str, timeout: float) -> dict:
  """run_setting in a fresh process (this script with --setting), its own device peak.

  The calling process must not touch the device: it would pre-allocate GPU memory.
  """
  cmd = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], f'--setting={name}']
  try:  # stderr passes through: compile logs and tracebacks stay visible.
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout).stdout
  except subprocess.TimeoutExpired:
    return {'setting': name, 'status': 'timeout'}
  for line in reversed(out.splitlines()):
    if line.startswith('RESULT '):
      return json.loads(line[len('RESULT '):])
  return {'setting': name, 'status': 'error'}


def write_tables(results: list[dict], out: str, echo: bool = True) -> None:
  """<out>/gpu.csv/.md (common.write_table) and <out>/gpu_detail.csv/.md; `echo`: print
  the Markdown."""
  nan = float('nan')
  by_name = {r['setting']: r for r in results}
  ok_time = lambda r: r.get('median_s', nan) if r and r['status'] == 'ok' else nan  # noqa
  variant = {n: DTYPES[n.split('-')[1]] + ('' if r['status'] == 'ok'
                                          else f' ({r["status"]})')
             for n, r in by_name.items()}  # 'bf16', 'bf16 (OOM)', ...
  rows, detail = [], []
  for r in results:
    model, dtype, b = r['setting'].split('-')
    batch, t, base = int(b[1:]), ok_time(r), f'{model}-float32-{b}'
    rows.append({'benchmark': f'{MODELS[model]} train step, batch {batch}',
                 'variant': variant[r['setting']], 'median_s': t, 'unit_per_s': batch / t,
                 'ratio': ok_time(by_name.get(base)) / t,
                 'baseline_variant': variant.get(base, 'fp32')})
    achieved = r.get('flops', nan) / t
    detail.append({'setting': f'{MODELS[model]} {DTYPES[dtype]} batch {batch}',
                   'samples_per_s': batch / t,
                   'model_tflops_per_step': r.get('flops', nan) / 1e12,
                   'achieved_tflops': achieved / 1e12,
                   'mfu': achieved / r.get('devices', 1)
                          / peak_flops(r.get('device_kind', ''), dtype),
                   'peak_memory_gib': r.get('peak_gib', nan),
                   'compile_s': r.get('compile_s', nan)})
  info = next((r for r in results if 'device_kind' in r), {})
  with contextlib.redirect_stdout(sys.stdout if echo else io.StringIO()):
    common.write_table(
        rows, out, 'gpu',
        f'Train step on {info.get("device_kind", "?")} ({info.get("backend", "?")}, '
        f'jax {info.get("jax", "?")}; ratio: bf16 speed-up over fp32)', unit='samples/s')
  pd.DataFrame(detail).to_csv(os.path.join(out, 'gpu_detail.csv'), index=False,
                              float_format='%.6g')

  def fmt(x, f):
    return format(x, f) if isinstance(x, str) or np.isfinite(x) else '–'
  lines = ['| setting | samples/s | model TFLOP/step | TFLOP/s | MFU | peak GiB | '
           'compile s |', '|---' + '|---:' * 6 + '|']
  lines += ['| ' + ' | '.join(map(fmt, d.values(), DETAIL_FORMATS)) + ' |'
            for d in detail]
  text = '\n'.join(lines) + '\n'
  with open(os.path.join(out, 'gpu_detail.md'), 'w') as f:
    f.write(text)
  if echo:
    print(text)


def main(argv):
  del argv
  from absl import flags
  f = flags.FLAGS
  sizes = TINY if f.tiny else Sizes()
  batches = ([int(b) for b in f.batch_sizes] if f['batch_sizes'].present or not f.tiny
             else [4])
  if f.setting:  # Child process: one setting, result as a JSON line.
    print('RESULT ' + json.dumps(run_setting(f.setting, sizes, f.steps, f.warmup)))
    return
  names = [f'{m}-{d}-b{b}' for m in f.models for b in batches for d in f.dtypes]
  deadline = time.monotonic() + f.budget_s
  results = []
  for name in names:  # Tables rewritten after each: a killed run keeps what it measured.
    left = deadline - time.monotonic()
    if left < 10:
      results.append({'setting': name, 'status': 'skipped'})
    elif f.isolate:
      results.append(run_isolated(name, min(f.setting_timeout_s, left)))
    else:
      results.append(run_setting(name, sizes, f.steps, f.warmup))
    r = results[-1]
    print(f'{name}: {r["status"]}, {r.get("median_s")} s/step, loss {r.get("loss")}',
          file=sys.stderr)
    write_tables(results, f.out, echo=name == names[-1])


def define_flags() -> None:
  from absl import flags
  flags.DEFINE_string('out', 'benchmarks/out/gpu', 'Folder of gpu.*, gpu_detail.*.')
  flags.DEFINE_bool('tiny', False, 'Tiny models and batch 4 (CPU tests).')
  flags.DEFINE_list('models', ['m4', 'm5'], 'm4 (Model 4) and/or m5 (Model 5).')
  flags.DEFINE_list('dtypes', ['float32', 'bfloat16'], 'Compute dtypes (fp32 first).')
  flags.DEFINE_list('batch_sizes', ['32', '64'], 'Batch sizes (--tiny: 4 unless set).')
  flags.DEFINE_integer('steps', 10, 'Timed steps per setting (median).')
  flags.DEFINE_integer('warmup', 2, 'Untimed steps after compilation.')
  flags.DEFINE_bool('isolate', True, 'One process per setting (per-setting peak memory).')
  flags.DEFINE_float('budget_s', 420, 'Wall time for all settings; later ones skipped.')
  flags.DEFINE_float('setting_timeout_s', 180, 'Wall time of one setting (isolated).')
  flags.DEFINE_string('setting', '', 'Internal: run this one setting, print its result.')


if __name__ == '__main__':
  from absl import app
  define_flags()
  app.run(main)

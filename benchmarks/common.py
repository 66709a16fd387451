"""Shared by the benchmark scripts: timing variants side by side (`interleaved_medians`)
and what each writes (`write_table`): <out>/<name>.csv with the columns
benchmark,variant,median_s,unit_per_s,ratio,baseline_variant and <out>/<name>.md, the
same as a Markdown table (also printed); the values a benchmark checked on the way
(`write_checks`): <out>/<name>_checks.json; and the inputs several use: generated 30 s
MP3s (`make_mp3s`), the demo's config on generated 30 s songs (`demo_config`) and
timed training epochs on prepared data (`epoch_fns`)."""

from __future__ import annotations

import json
import math
import os
import re
import time
from typing import Callable

import numpy as np
import pandas as pd

COLUMNS = ('benchmark', 'variant', 'median_s', 'unit_per_s', 'ratio', 'baseline_variant')


TORCH_MISSING = ('error: the PyTorch rows (train_step: torch eager and torch.compile) need '
                 'the test requirements: pip install -r requirements-test.txt (torch 2.13.0, '
                 'the CPU wheel); or leave them out: --only=features,epoch,frontends,pretrain,predict')


def require_torch() -> None:
  """Exits with TORCH_MISSING (one line, status 1) when PyTorch is not installed."""
  import importlib.util
  if importlib.util.find_spec('torch') is None:
    raise SystemExit(TORCH_MISSING)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int
                        ) -> dict[str, float]:
  """Median seconds of each no-argument callable, timed in turns (one call of each per
  round) so that every variant sees the same machine conditions."""
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for name, fn in fns.items():
      t0 = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t0)
  return {k: float(np.median(v)) for k, v in times.items()}


def write_table(rows: list[dict], out_dir: str, name: str, title: str,
                unit: str = 'per s') -> str:
  """Writes the CSV and Markdown of `rows`; returns the Markdown."""
  os.makedirs(out_dir, exist_ok=True)
  pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(
      os.path.join(out_dir, f'{name}.csv'), index=False, float_format='%.6g')

  def cell(x, fmt):
    return '–' if not np.isfinite(x) else format(x, fmt)

  lines = [f'# {title}', '',
           f'| benchmark | variant | median s | {unit} | ratio | vs |',
           '|---|---|---:|---:|---:|---|']
  for r in rows:
    lines.append(f'| {r["benchmark"]} | {r["variant"]} | {cell(r["median_s"], ".3f")} | '
                 f'{cell(r["unit_per_s"], ".2f")} | {cell(r["ratio"], ".2f")} | '
                 f'{r["baseline_variant"]} |')
  text = '\n'.join(lines) + '\n'
  with open(os.path.join(out_dir, f'{name}.md'), 'w') as f:
    f.write(text)
  print(text)
  return text


def checks_path(out_dir: str, name: str) -> str:
  return os.path.join(out_dir, f'{name}_checks.json')


def write_checks(out_dir: str, name: str, checks: dict[str, float]) -> str:
  """Writes the numbers a benchmark checked (e.g. its largest difference from the
  reference implementation and the bound it held it to) to <out>/<name>_checks.json,
  for the runner and the tests to read; returns the path."""
  bad = {k: v for k, v in checks.items() if not math.isfinite(v)}
  if bad:
    raise ValueError(f'non-finite checks of {name}: {bad}')
  os.makedirs(out_dir, exist_ok=True)
  path = checks_path(out_dir, name)
  with open(path, 'w') as f:
    json.dump({k: float(v) for k, v in checks.items()}, f, indent=1)
  return path


def make_mp3s(folder: str, n: int) -> list[str]:
  """`n` 30 s, 44.1 kHz stereo MP3s of the synthetic demo music."""
  import soundfile as sf
  import soxr
  from data_prep import synthetic
  params = synthetic.SyntheticParams(duration_s=30.0)
  paths = []
  for i in range(n):
    rng = np.random.default_rng([11, i])
    y = synthetic.synthesize(*rng.uniform(size=2), params, rng)
    y = soxr.resample(y, params.sample_rate, 44100)
    stereo = np.stack([y, np.roll(y, 441)], axis=1) * 0.9
    paths.append(os.path.join(folder, f'song{i:03d}.mp3'))
    sf.write(paths[-1], stereo.astype(np.float32), 44100, format='MP3')
  return paths


def epoch_fns(config, builder) -> tuple[Callable[[], None], Callable[[], None], int]:
  """(one training epoch, the input pipeline alone for an epoch, examples per epoch):
  no-argument callables, each call a new epoch (a new shuffle), compiled and warmed."""
  import functools
  import itertools

  import jax
  from jax.sharding import NamedSharding, PartitionSpec as P
  from mer_jax import input_pipeline, tasks, train
  keys = tasks.input_keys(config)
  lookups = input_pipeline.lookups(builder, config, keys)
  ds = input_pipeline.load_split(builder, 'train', lookups)
  n = input_pipeline.num_examples(builder, 'train')
  bs = config.train.batch_size
  mesh = train.make_mesh()
  put = functools.partial(train.device_batch, keys=keys,
                          sharding=NamedSharding(mesh, P('data')))
  model = tasks.create_model(config)
  dummy = input_pipeline.dummy_batch(builder, lookups, bs)
  state = train.create_train_state(config, model, jax.random.key(0),
                                   {k: dummy[k] for k in keys}, 1000)
  state = jax.device_put(state, NamedSharding(mesh, P()))
  step = jax.jit(functools.partial(train.train_step,
                                   loss_fn=tasks.get_task(config).loss_fn), donate_argnums=0)
  epochs = itertools.count()

  def batches():
    return input_pipeline.prefetch(
        input_pipeline.train_batches(ds, n, bs, config.seed, next(epochs)), 2, put)

  def one_epoch():
    nonlocal state
    for b in batches():
      state, m = step(state, b, jax.random.key(1))
    jax.block_until_ready(m.loss.compute())

  def pipeline_only():
    for b in batches():
      pass
    jax.block_until_ready(b)

  one_epoch()  # Compiles.
  pipeline_only()
  return one_epoch, pipeline_only, (n // bs) * bs


def demo_config(root: str, modality: str, songs: int):
  """The demo's Model 4 on `songs` generated 30 s songs (1292-frame log-mels) under
  `root`."""
  from configs import demo
  config = demo.get_config()
  config.data.name = 'bench'
  config.data.root = os.path.join(root, 'songs')
  config.data.data_dir = os.path.join(root, 'prepared')
  config.data.synthetic.num_songs = songs
  config.data.synthetic.duration_s = 30.0
  config.audio.num_frames = 1292
  config.model.modality = modality
  return config


_SWEEP_START = re.compile(
    r'^I(\d{4}) (\d\d):(\d\d):(\d\d\.\d+) .*\] \[\d+/\d+\] (\S+): training')


# A run of `sweep.parallel_runs` > 1 (mer_jax/run_pool.py) says its own time.
_SWEEP_ENDED = re.compile(r'^\[\d+/\d+\] (\S+): finished in (\d+) s$')


def sweep_run_times(log: str, end: float) -> dict[str, float]:
  """Seconds of each training run of a sweep job's log: from its '[i/n] name: training'
  line to the next run's (the last one: to the job's end, `end`, seconds of the day);
  runs trained side by side: their '[k/n] name: finished in <s> s' lines."""
  starts, ended = [], {}
  for line in log.splitlines():
    m = _SWEEP_START.match(line)
    if m:
      starts.append((m.group(5), int(m.group(2)) * 3600 + int(m.group(3)) * 60
                     + float(m.group(4))))
    m = _SWEEP_ENDED.match(line)
    if m:
      ended[m.group(1)] = float(m.group(2))
  if ended:
    return ended
  out = {}
  for i, (name, t) in enumerate(starts):
    nxt = starts[i + 1][1] if i + 1 < len(starts) else end
    out[name] = (nxt - t) % 86400
  return out

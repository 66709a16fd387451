"""Shared by the benchmark scripts: timing variants side by side (`interleaved_medians`)
and what each writes (`write_table`): <out>/<name>.csv with the columns
benchmark,variant,median_s,unit_per_s,ratio,baseline_variant and <out>/<name>.md, the
same as a Markdown table (also printed); and the values a benchmark checked on the way
(`write_checks`): <out>/<name>_checks.json."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Callable

import numpy as np
import pandas as pd

COLUMNS = ('benchmark', 'variant', 'median_s', 'unit_per_s', 'ratio', 'baseline_variant')


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

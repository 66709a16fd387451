"""Shared by the benchmark scripts: timing variants side by side (`interleaved_medians`)
and what each writes (`write_table`): <out>/<name>.csv with the columns
benchmark,variant,median_s,unit_per_s,ratio,baseline_variant and <out>/<name>.md, the
same as a Markdown table (also printed)."""

from __future__ import annotations

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

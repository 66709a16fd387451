"""What every benchmark script writes: <out>/<name>.csv with the columns
benchmark,variant,median_s,unit_per_s,ratio,baseline_variant and <out>/<name>.md, the
same as a Markdown table (also printed)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

COLUMNS = ('benchmark', 'variant', 'median_s', 'unit_per_s', 'ratio', 'baseline_variant')


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

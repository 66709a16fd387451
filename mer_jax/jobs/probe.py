"""Job 'probe' (the MARBLE protocol): each tower of `config.probe.towers` frozen, its song
embeddings computed once per prepared dataset (cached beside it), and a head per
dimension (`config.probe.head`: linear, or one hidden layer) trained on them for every
seed of `config.sweep.seeds`, like any run: <workdir>/runs/<tower>-seed<k>/, each with
its report.

<workdir>/report/: probe.md and probe.csv (per tower and dimension: test R², RMSE and
MAE, mean and std over the seeds; every seed's R²) and probe.png (test R² per tower,
mean ± std), so a pretrained tower, a supervised VGG, musicnn and a random tower are
compared on one table. A rerun skips finished runs.
"""

from __future__ import annotations

import logging
import os
import re

import ml_collections

from mer_jax import metrics, runs
from mer_jax.jobs import JobResult

HEADS = ('linear', 'mlp')

PREPARES_DATA = True  # Reads config.data: `jobs.run` checks the release is there first.


def towers(config: ml_collections.ConfigDict) -> list[str]:
  """The towers compared: config.probe.towers, or the one config.model.init_audio_from
  names ('random' when unset)."""
  return list(config.probe.towers) or [config.model.init_audio_from or 'random']


def label(tower: str) -> str:
  """A tower's name in tables and run folders: 'random', 'musicnn' or the run
  folder's name."""
  if tower in ('random', 'musicnn'):
    return tower
  return re.sub(r'[^A-Za-z0-9_.-]+', '_', os.path.basename(os.path.normpath(tower)))


def run_config(config: ml_collections.ConfigDict, tower: str, seed: int
               ) -> ml_collections.ConfigDict:
  """One probe run: audio only, the frozen tower's embeddings, per-dimension heads."""
  if config.probe.head not in HEADS:
    raise ValueError(f'config.probe.head must be one of {HEADS}, got {config.probe.head!r}')
  hidden = 0 if config.probe.head == 'linear' else config.model.fusion.hidden
  fields = {'seed': seed, 'job': 'train', 'task': 'fusion', 'model.modality': 'audio',
            'model.head': 'point', 'model.fusion.per_dimension': True,
            'model.fusion.hidden': hidden, 'augment.enabled': False}
  if tower == 'musicnn':
    fields.update({'model.audio_frontend': 'musicnn', 'model.musicnn.trainable': False,
                   'model.init_audio_from': ''})
  else:
    if tower != 'random' and not os.path.isdir(tower):
      raise ValueError(f'{tower}: not a run folder (config.probe.towers: \'random\', '
                       '\'musicnn\' or a run\'s workdir)')
    fields.update({'model.audio_frontend': 'vgg_frozen',
                   'model.init_audio_from': '' if tower == 'random' else tower})
  return runs.derive(config, **fields)


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  """Trains every unfinished probe run, then writes the comparison table."""
  from mer_jax import train
  todo = [(t, s) for t in towers(config) for s in config.sweep.seeds]
  for i, (tower, seed) in enumerate(todo):
    folder = os.path.join(workdir, 'runs', f'{label(tower)}-seed{seed}')
    if runs.is_finished(folder):
      logging.info('[%d/%d] %s: finished, skipped', i + 1, len(todo), folder)
      continue
    print(f'[{i + 1}/{len(todo)}] probe of {label(tower)}, seed {seed}', flush=True)
    train.train_and_evaluate(run_config(config, tower, seed), folder)
  table = summarize(workdir, todo)
  path = write_report(os.path.join(workdir, 'report'), table, config)
  lines = [f'{r.tower}: test R² valence {r.valence_r2_mean:.3f} ± {r.valence_r2_std:.3f}, '
           f'arousal {r.arousal_r2_mean:.3f} ± {r.arousal_r2_std:.3f}'
           for r in table.itertuples()]
  return JobResult({'table': table.to_dict('records')}, os.path.abspath(path), tuple(lines))


def summarize(workdir: str, todo: list[tuple[str, int]]):
  """One row per tower: mean and std (over seeds, ddof 1) of each test metric and
  dimension, and the seeds' R² values."""
  import numpy as np
  import pandas as pd
  per_seed = []
  for tower, seed in todo:
    m = pd.read_csv(os.path.join(workdir, 'runs', f'{label(tower)}-seed{seed}', 'report',
                                 'metrics.csv'))
    m = m[m.split == 'test']
    per_seed.append({'tower': label(tower), 'seed': seed,
                     **{f'{d}_{k}': float(m[(m.dimension == d) & (m.metric == k)].value.iloc[0])
                        for d in metrics.DIMENSIONS for k in ('r2', 'rmse', 'mae')}})
  df = pd.DataFrame(per_seed)
  rows = []
  for tower, g in df.groupby('tower', sort=False):
    row = {'tower': tower, 'seeds': len(g)}
    for col in [c for c in df.columns if c not in ('tower', 'seed')]:
      row[f'{col}_mean'] = float(g[col].mean())
      row[f'{col}_std'] = float(g[col].std(ddof=1)) if len(g) > 1 else float('nan')
    for d in metrics.DIMENSIONS:
      row[f'{d}_r2_seeds'] = ' '.join(f'{v:.4f}' for v in g[f'{d}_r2'])
    rows.append(row)
  return pd.DataFrame(rows)


def write_report(folder: str, table, config: ml_collections.ConfigDict) -> str:
  """probe.md, probe.csv and probe.png; returns probe.md's path."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  import numpy as np
  os.makedirs(folder, exist_ok=True)
  table.to_csv(os.path.join(folder, 'probe.csv'), index=False, float_format='%.6g')
  head = ('linear' if config.probe.head == 'linear'
          else f'one hidden layer of {config.model.fusion.hidden}')
  lines = ['# Probe: frozen towers, a head per dimension', '',
           f'Head: {head}, per dimension; test split; mean ± std over seeds '
           f'{", ".join(map(str, config.sweep.seeds))}.', '',
           '| tower | valence R² | arousal R² | valence RMSE | arousal RMSE | seeds (R² v / a) |',
           '|---|---:|---:|---:|---:|---|']
  for r in table.to_dict('records'):
    cell = lambda k: f'{r[k + "_mean"]:.3f} ± {r[k + "_std"]:.3f}'  # noqa: E731
    lines.append(f'| {r["tower"]} | {cell("valence_r2")} | {cell("arousal_r2")} | '
                 f'{cell("valence_rmse")} | {cell("arousal_rmse")} | '
                 f'{r["valence_r2_seeds"]} / {r["arousal_r2_seeds"]} |')
  path = os.path.join(folder, 'probe.md')
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')
  fig, ax = plt.subplots(figsize=(1.5 + 1.6 * len(table), 3.6))
  x = np.arange(len(table))
  for k, d in enumerate(metrics.DIMENSIONS):
    ax.bar(x + (k - 0.5) * 0.38, table[f'{d}_r2_mean'], 0.36,
           yerr=table[f'{d}_r2_std'].fillna(0), capsize=3, label=d)
  ax.set_xticks(x, table.tower)
  ax.axhline(0, color='k', lw=0.8)
  ax.set(ylabel='test R² (mean ± std over seeds)', title='Probe of frozen towers')
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(folder, 'probe.png'), dpi=120)
  plt.close(fig)
  return path

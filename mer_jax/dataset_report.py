"""Dataset audit (the thesis's Figure 4.1, done from the data): what the labels of the
configured release look like after preparation, per split and overall.

  dataset_report.csv      split,statistic,dimension,value (long form; below)
  dataset_histograms.csv  split,dimension,bin_low,bin_high,count (20 bins on 0..1)
  dataset_report.md       the same as tables, with the band shares in words
  dataset_histograms.png  valence and arousal histograms per split
  dataset_scatter.png     valence x arousal per split, coloured by quadrant, the
                          [0.4, 0.6] band shaded

Statistics (dimension valence | arousal | '' for song-level ones):
  songs, skipped                  written songs; input rows preparation skipped
  mean, std (ddof 1), min, median, max
  band_0.4_0.6, band_0.45_0.55    share of songs whose value lies in the closed band;
                                  dimension 'either': valence or arousal in it
  bimodality_coefficient          Sarle's b = (g² + 1) / (k + 3 (n-1)² / ((n-2)(n-3))),
                                  g, k the bias-corrected sample skewness and excess
                                  kurtosis (SAS's formula); 5/9 for a uniform, above it
                                  suggests bimodality (n >= 4 songs)
  quadrant_Q1..Q4                 songs per quadrant of the labels at 0.5 (quadrant_share_*
                                  their shares); official_Q1..Q4 the release's own labels
  official_agreement              share of songs whose official quadrant equals the one
                                  of their labels (songs with an official quadrant)
  std_songs, std_mean, std_median, std_max   annotator std (0..1 scale) where released
  source_seconds_{min,median,max} length of the audio files (their headers)
  prepared_seconds_{min,median}   audio in the model's window: frames x hop / sample rate
  shorter_than_window             songs with fewer frames than config.audio.num_frames
"""

from __future__ import annotations

import os
import shutil
import tempfile

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.stats  # noqa: E402

from mer_jax import metrics  # noqa: E402
from mer_jax.report import QUADRANT_COLORS, QUADRANT_NAMES  # noqa: E402

SPLITS = ('train', 'validation', 'test', 'all')
BANDS = ((0.4, 0.6), (0.45, 0.55))
BINS = 20
UNIFORM_BC = 5 / 9  # Sarle's coefficient of a uniform distribution.


def bimodality_coefficient(x: np.ndarray) -> float:
  """Sarle's bimodality coefficient of a sample (n >= 4), NaN for fewer songs."""
  x = np.asarray(x, np.float64)
  n = x.size
  if n < 4 or np.ptp(x) == 0:
    return float('nan')
  g = scipy.stats.skew(x, bias=False)
  k = scipy.stats.kurtosis(x, fisher=True, bias=False)
  return float((g ** 2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def band_share(x: np.ndarray, low: float, high: float) -> float:
  """Share of values in the closed band [low, high], compared in the values' own
  precision (a label 0.6 stored as float32 is in [0.4, 0.6])."""
  x = np.asarray(x)
  if np.issubdtype(x.dtype, np.floating):
    low, high = x.dtype.type(low), x.dtype.type(high)
  return float(np.mean((x >= low) & (x <= high))) if x.size else float('nan')


def songs_frame(config: ml_collections.ConfigDict) -> tuple[pd.DataFrame, dict]:
  """(one row per prepared song: song_id, split, valence, arousal, quadrant (0..3),
  official_quadrant (-1: none), valence_std, arousal_std, frames, source_seconds;
  {'skipped': input rows skipped per split ('' = before a split was known),
  'prep_report': its path}). Prepares the dataset if needed."""
  import soundfile as sf
  from data_prep import prepare
  from mer_jax import input_pipeline
  builder = prepare.prepare(config)
  keys = ('song_id', 'valence', 'arousal', 'quadrant', 'official_quadrant',
          'valence_std', 'arousal_std')
  parts = []
  for split in input_pipeline.split_names(builder):
    c = input_pipeline.read_split(builder, split, keys)
    parts.append(pd.DataFrame({'split': split, **{k: c[k] for k in keys}}))
  df = pd.concat(parts, ignore_index=True)
  df['song_id'] = [s.decode() for s in df.song_id]
  rep_path = os.path.join(builder.data_dir, 'prep_report.csv')
  rep = pd.read_csv(rep_path, dtype=str, keep_default_na=False)
  frames = dict(zip(rep.item_id, rep.frames))
  df['frames'] = [int(frames[s]) for s in df.song_id]
  paths = {s.song_id: s.audio_path for s in prepare.read_songs(config)[0]}

  def seconds(path: str) -> float:
    try:
      return float(sf.info(path).duration)
    except Exception:  # Not a libsndfile format (e.g. M4A): librosa/audioread.
      import librosa
      return float(librosa.get_duration(path=path))
  df['source_seconds'] = [seconds(paths[s]) for s in df.song_id]
  skipped = rep[rep.status == 'skipped'].split.value_counts().to_dict()
  return df, {'skipped': skipped, 'prep_report': rep_path}


def statistics(df: pd.DataFrame, skipped: dict[str, int],
               params: ml_collections.ConfigDict) -> pd.DataFrame:
  """The long table (split, statistic, dimension, value) of `songs_frame`'s rows;
  `params` is config.audio (hop, sample rate, window). Statistics that do not exist
  for a split (no official quadrants, no std, < 4 songs) are left out, never NaN."""
  rows = []

  def add(split, stat, dim, value):
    if value is not None and np.isfinite(value):
      rows.append({'split': split, 'statistic': stat, 'dimension': dim,
                   'value': float(value)})
  for split in SPLITS:
    g = df if split == 'all' else df[df.split == split]
    if not len(g):
      continue
    add(split, 'songs', '', len(g))
    add(split, 'skipped', '', sum(skipped.values()) if split == 'all'
        else skipped.get(split, 0))
    for d in metrics.DIMENSIONS:
      x = g[d].to_numpy(np.float64)
      add(split, 'mean', d, x.mean())
      add(split, 'std', d, x.std(ddof=1) if x.size > 1 else None)
      for stat, f in (('min', np.min), ('median', np.median), ('max', np.max)):
        add(split, stat, d, f(x))
      for low, high in BANDS:
        add(split, f'band_{low:g}_{high:g}', d, band_share(g[d].to_numpy(), low, high))
      add(split, 'bimodality_coefficient', d, bimodality_coefficient(x))
      s = g[f'{d}_std'].to_numpy(np.float64)
      s = s[np.isfinite(s)]
      if s.size:
        add(split, 'std_songs', d, s.size)
        for stat, f in (('std_mean', np.mean), ('std_median', np.median),
                        ('std_max', np.max)):
          add(split, stat, d, f(s))
    for low, high in BANDS:
      inside = ((g.valence >= low) & (g.valence <= high)
                | (g.arousal >= low) & (g.arousal <= high))
      add(split, f'band_{low:g}_{high:g}', 'either', inside.mean())
    q, off = g.quadrant.to_numpy(), g.official_quadrant.to_numpy()
    for k, name in enumerate(QUADRANT_NAMES):
      add(split, f'quadrant_{name}', '', np.sum(q == k))
      add(split, f'quadrant_share_{name}', '', np.mean(q == k))
    has = off >= 0
    if has.any():
      for k, name in enumerate(QUADRANT_NAMES):
        add(split, f'official_{name}', '', np.sum(off[has] == k))
      add(split, 'official_agreement', '', np.mean(off[has] == q[has]))
    sec = g.source_seconds.to_numpy(np.float64)
    for stat, f in (('min', np.min), ('median', np.median), ('max', np.max)):
      add(split, f'source_seconds_{stat}', '', f(sec))
    prepared = g.frames.to_numpy(np.float64) * params.hop_length / params.sample_rate
    add(split, 'prepared_seconds_min', '', prepared.min())
    add(split, 'prepared_seconds_median', '', np.median(prepared))
    add(split, 'shorter_than_window', '', np.sum(g.frames < params.num_frames))
  return pd.DataFrame(rows, columns=['split', 'statistic', 'dimension', 'value'])


def histograms(df: pd.DataFrame) -> pd.DataFrame:
  """split,dimension,bin_low,bin_high,count: 20 equal bins on 0..1 (numpy's: the last
  bin closed)."""
  edges = np.linspace(0, 1, BINS + 1)
  rows = []
  for split in SPLITS:
    g = df if split == 'all' else df[df.split == split]
    for d in metrics.DIMENSIONS if len(g) else ():
      counts, _ = np.histogram(g[d], bins=edges)
      rows += [{'split': split, 'dimension': d, 'bin_low': edges[i],
                'bin_high': edges[i + 1], 'count': int(c)} for i, c in enumerate(counts)]
  return pd.DataFrame(rows, columns=['split', 'dimension', 'bin_low', 'bin_high', 'count'])


def _value(stats: pd.DataFrame, split: str, stat: str, dim: str = '') -> float | None:
  r = stats[(stats.split == split) & (stats.statistic == stat) & (stats.dimension == dim)]
  return float(r.value.iloc[0]) if len(r) else None


def _fmt(x: float | None, pattern: str = '{:.3f}') -> str:
  return 'n/a' if x is None else pattern.format(x)


def markdown(stats: pd.DataFrame, name: str, prep_report: str) -> str:
  splits = [s for s in SPLITS if _value(stats, s, 'songs') is not None]
  head = '| Statistic | ' + ' | '.join(splits) + ' |'
  rule = '|---|' + '---:|' * len(splits)

  def row(label, stat, dim='', pattern='{:.3f}'):
    return (f'| {label} | ' + ' | '.join(_fmt(_value(stats, s, stat, dim), pattern)
                                         for s in splits) + ' |')
  n_all = int(_value(stats, 'all', 'songs'))
  lines = [f'# Dataset report: {name}', '',
           f'{n_all} prepared songs; valence and arousal on 0..1. Rows preparation '
           f'skipped are listed in {prep_report}.', '', head, rule,
           row('songs', 'songs', pattern='{:.0f}'),
           row('skipped rows', 'skipped', pattern='{:.0f}')]
  lines += ['', '## Labels', '', head, rule]
  for d in metrics.DIMENSIONS:
    lines += [row(f'{d} {s}', s, d) for s in ('mean', 'std', 'min', 'median', 'max')]
  lines += ['', '## Songs near the middle', '',
            'Share of songs whose value lies in the band (either: valence or arousal in '
            'it). MERGE\'s curators are said to have removed songs with valence or '
            'arousal in [0.4, 0.6]; this table checks it on the data.', '', head, rule]
  for low, high in BANDS:
    band = f'band_{low:g}_{high:g}'
    for d in (*metrics.DIMENSIONS, 'either'):
      lines.append(row(f'{d} in [{low:g}, {high:g}]', band, d, '{:.1%}'))
  lines.append('')
  for d in (*metrics.DIMENSIONS, 'either'):
    share = _value(stats, 'all', 'band_0.4_0.6', d)
    n = round(share * n_all)
    lines.append(f'- {d if d != "either" else "valence or arousal"} in [0.4, 0.6]: '
                 f'{n} of {n_all} songs ({share:.1%})' + (' - the band is empty.'
                                                          if n == 0 else '.'))
  lines += ['', '## Bimodality', '',
            "Sarle's bimodality coefficient b = (g² + 1) / (k + 3 (n-1)² / ((n-2)(n-3))) "
            '(g: skewness, k: excess kurtosis, both bias-corrected). A uniform '
            f'distribution has b = 5/9 = {UNIFORM_BC:.3f}; above it suggests two modes.',
            '', head, rule]
  lines += [row(d, 'bimodality_coefficient', d) for d in metrics.DIMENSIONS]
  lines += ['', '## Quadrants', '', 'Quadrant of the labels at 0.5 (Q1 +v+a, Q2 -v+a, '
            'Q3 -v-a, Q4 +v-a).', '', head, rule]
  lines += [row(q, f'quadrant_{q}', pattern='{:.0f}') for q in QUADRANT_NAMES]
  if _value(stats, 'all', 'official_agreement') is not None:
    lines += [row(f'official {q}', f'official_{q}', pattern='{:.0f}')
              for q in QUADRANT_NAMES]
    lines.append(row('official = labels at 0.5', 'official_agreement',
                     pattern='{:.1%}'))
  if _value(stats, 'all', 'std_songs', 'valence') is not None:
    lines += ['', '## Annotator spread', '', 'Standard deviation of the annotators\' '
              'ratings per song (0..1 scale), as released.', '', head, rule]
    for d in metrics.DIMENSIONS:
      lines += [row(f'{d} songs with std', 'std_songs', d, '{:.0f}'),
                row(f'{d} std mean', 'std_mean', d), row(f'{d} std median', 'std_median', d),
                row(f'{d} std max', 'std_max', d)]
  lines += ['', '## Audio', '', 'Source: the audio files\' length; prepared: the audio '
            "in the model's window (frames x hop / sample rate).", '', head, rule,
            row('source seconds, min', 'source_seconds_min', pattern='{:.1f}'),
            row('source seconds, median', 'source_seconds_median', pattern='{:.1f}'),
            row('source seconds, max', 'source_seconds_max', pattern='{:.1f}'),
            row('prepared seconds, min', 'prepared_seconds_min', pattern='{:.1f}'),
            row('prepared seconds, median', 'prepared_seconds_median', pattern='{:.1f}'),
            row('songs shorter than the window', 'shorter_than_window', pattern='{:.0f}'),
            '', 'Tables: `dataset_report.csv`, `dataset_histograms.csv`. Figures: '
            '`dataset_histograms.png`, `dataset_scatter.png`.']
  return '\n'.join(lines) + '\n'


def plot(df: pd.DataFrame, folder: str) -> None:
  """dataset_histograms.png and dataset_scatter.png (one column per split)."""
  splits = [s for s in SPLITS if s == 'all' or (df.split == s).any()]
  groups = [df if s == 'all' else df[df.split == s] for s in splits]
  edges = np.linspace(0, 1, BINS + 1)
  fig, axes = plt.subplots(2, len(splits), figsize=(3.6 * len(splits), 6), squeeze=False)
  for j, (split, g) in enumerate(zip(splits, groups)):
    for i, d in enumerate(metrics.DIMENSIONS):
      ax = axes[i, j]
      ax.axvspan(0.4, 0.6, color='tab:olive', alpha=0.15, lw=0)
      ax.hist(g[d], bins=edges, color='tab:gray', edgecolor='white')
      ax.axvline(0.5, color='k', lw=1, ls='--')
      ax.set(xlim=(0, 1), xlabel=d, ylabel='songs', title=f'{split}: {d} (n={len(g)})')
  fig.tight_layout()
  fig.savefig(os.path.join(folder, 'dataset_histograms.png'), dpi=100)
  plt.close(fig)
  fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 4.4), squeeze=False)
  for ax, split, g in zip(axes[0], splits, groups):
    ax.axvspan(0.4, 0.6, color='tab:olive', alpha=0.15, lw=0)
    ax.axhspan(0.4, 0.6, color='tab:olive', alpha=0.15, lw=0)
    for k, (q, c) in enumerate(zip(QUADRANT_NAMES, QUADRANT_COLORS)):
      s = g[g.quadrant == k]
      ax.scatter(s.valence, s.arousal, s=8, c=c, label=f'{q} ({len(s)})')
    ax.axvline(0.5, color='k', lw=1)
    ax.axhline(0.5, color='k', lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel='valence', ylabel='arousal', aspect='equal',
           title=f'{split} (n={len(g)}); band [0.4, 0.6] shaded')
    ax.legend(fontsize=7, loc='lower right')
  fig.tight_layout()
  fig.savefig(os.path.join(folder, 'dataset_scatter.png'), dpi=100)
  plt.close(fig)


def write(config: ml_collections.ConfigDict, folder: str) -> pd.DataFrame:
  """The whole report into `folder` (written beside it first, then moved in: a crash
  leaves no half-written report); returns the statistics table."""
  df, info = songs_frame(config)
  stats = statistics(df, info['skipped'], config.audio)
  os.makedirs(folder, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.dataset_report.', dir=folder)
  try:
    stats.to_csv(os.path.join(tmp, 'dataset_report.csv'), index=False, float_format='%.8g')
    histograms(df).to_csv(os.path.join(tmp, 'dataset_histograms.csv'), index=False,
                          float_format='%.8g')
    with open(os.path.join(tmp, 'dataset_report.md'), 'w') as f:
      f.write(markdown(stats, config.data.name, info['prep_report']))
    plot(df, tmp)
    for name in sorted(os.listdir(tmp)):
      os.replace(os.path.join(tmp, name), os.path.join(folder, name))
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return stats

"""Published results beside ours: `published_results.csv` (next to this module) holds
the field's numbers with their source, and `lines` prints the rows on the dataset of a
results table under it, saying whether the split is the same.

Columns: system, dataset (pmemo | deam | emomusic | merge_bimodal | merge_audio | ...),
split (the published split's name: 'music2emo' = Music2Emo's meta/split/ files,
'merge_official' = one of MERGE's tvt split files, the source not saying which), metric
(r2 | quadrant_macro_f1, as fractions), dimension (valence | arousal | quadrant), value,
test_songs (the published split's test size, '' when unknown: a split of the same name
with another test size is not the same), source, note. A row is added by hand, with its
source.

Our split's name (`split_of`): config.data.split_name when a split file is used (''
means unnamed, never "the same"), else 'merge_<config.data.split>' for MERGE,
'mediaeval2013' or 'seeded' for EmoMusic, 'seeded' for PMEmo and DEAM.
"""

from __future__ import annotations

import os

import ml_collections
import pandas as pd

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'published_results.csv')
COLUMNS = ('system', 'dataset', 'split', 'metric', 'dimension', 'value', 'test_songs',
           'source', 'note')
MERGE_OFFICIAL = ('merge_70_15_15', 'merge_40_30_30')
_METRIC_NAMES = {'r2': 'R²', 'quadrant_macro_f1': 'quadrant macro-F1'}


def load(path: str = PATH) -> pd.DataFrame:
  """The published rows (COLUMNS); value as float."""
  df = pd.read_csv(path, dtype=str, keep_default_na=False)
  missing = [c for c in COLUMNS if c not in df.columns]
  if missing:
    raise ValueError(f'{path}: missing column(s) {", ".join(missing)}')
  df['value'] = df.value.astype(float)
  return df


def dataset_of(config: ml_collections.ConfigDict) -> str:
  """The dataset key of the configured source ('' for a manifest or the demo)."""
  source = config.data.source
  if source == 'merge':
    return 'merge_' + config.data.merge_variant.split('_')[0]
  return source if source in ('pmemo', 'deam', 'emomusic') else ''


def split_of(config: ml_collections.ConfigDict) -> tuple[str, str]:
  """(our split's name, its description for the report)."""
  data = config.data
  if data.get('split_file', ''):
    name = data.get('split_name', '')
    return name, f'the split file {data.split_file}' + (f' ({name})' if name else '')
  if data.source == 'merge':
    return f'merge_{data.split}', f"MERGE's official {data.split} split"
  if data.source == 'emomusic' and data.split == 'mediaeval2013':
    return 'mediaeval2013', ("MediaEval 2013's evaluation set as test, development cut "
                             f'80/20 with seed {data.split_seed}')
  return 'seeded', f'our seeded split (seed {data.split_seed})'


def same_split(ours: str, theirs: str, n_test: int | None = None,
               their_n_test: str = '') -> str:
  """'yes' | 'no' | 'maybe' (one of MERGE's two official splits, the source not saying
  which) | 'size' (the same name, but `n_test` test songs against their_n_test)."""
  if theirs == 'merge_official':
    return 'maybe' if ours in MERGE_OFFICIAL else 'no'
  if not (ours and ours == theirs):
    return 'no'
  other_size = n_test is not None and their_n_test and int(their_n_test) != n_test
  return 'size' if other_size else 'yes'


def _ours(metric: str, dimension: str, table: pd.DataFrame, quads: pd.DataFrame
          ) -> tuple[float, str] | None:
  """(our best mean over seeds, its model) for a published metric, None if we have none."""
  if metric == 'r2':
    g = table[(table.metric == 'r2') & (table.dimension == dimension)]
    if not len(g):
      return None
    r = g.loc[g['mean'].idxmax()]
    return float(r['mean']), r.model
  if metric == 'quadrant_macro_f1' and len(quads):
    r = quads.loc[quads.macro_f1_mean.idxmax()]
    return float(r.macro_f1_mean), r.model
  return None


def lines(config: ml_collections.ConfigDict, table: pd.DataFrame, quads: pd.DataFrame,
          published: pd.DataFrame | None = None, n_test: int | None = None
          ) -> list[str]:
  """The results' section of published rows on this dataset ([] when none): each with
  our best model on the same metric, the split comparison (`n_test`: our test songs,
  checked against the published split's) and the source."""
  pub = load() if published is None else published
  rows = pub[pub.dataset == dataset_of(config)] if dataset_of(config) else pub.iloc[:0]
  if not len(rows):
    return []
  ours, described = split_of(config)
  out = ['', '## Published results on this dataset', '',
         f'Ours: the best model on each metric (mean over seeds), on {described}. A '
         'number is comparable with a published one only on the same split.', '',
         '| System | Metric | Dimension | Published | Ours (model) | Same split | Source |',
         '|---|---|---|---:|---:|---|---|']
  for r in rows.itertuples():
    mine = _ours(r.metric, r.dimension, table, quads)
    cell = f'{mine[0]:.3f} ({mine[1]})' if mine else 'n/a'
    same = {'yes': 'yes', 'no': f'no (theirs: {r.split})',
            'maybe': 'maybe (theirs: one of MERGE\'s official splits)',
            'size': f'no ({r.split} by name, but {n_test} test songs; theirs '
                    f'{r.test_songs})'}[same_split(ours, r.split, n_test, r.test_songs)]
    note = f'; {r.note}' if r.note else ''
    out.append(f'| {r.system} | {_METRIC_NAMES.get(r.metric, r.metric)} | {r.dimension} | '
               f'{r.value:.4f} | {cell} | {same} | {r.source}{note} |')
  if config.data.source == 'merge':
    out += ['', 'Our quadrant macro-F1 thresholds the regression outputs at 0.5; the '
            "MERGE paper's is a quadrant classifier's."]
  return out

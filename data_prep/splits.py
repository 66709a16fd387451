"""Seeded train/validation/test splits for releases without an official one.

The split is stratified by quadrant (scikit-learn) and written once as a CSV
(`song_id,split`) next to the prepared data; every later run reads that file, so the
split never changes under a researcher's feet: `stored_split_path(config)` says where.
"""

from __future__ import annotations

import logging
import os

import ml_collections
import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


def stored_split_path(config: ml_collections.ConfigDict, kind: str = '') -> str:
  """Where the seeded split of a release without an official one (PMEmo, DEAM) is kept:
  `<config.data.data_dir>/splits/<config.data.source>[_<kind>]_seed<config.data.split_seed>.csv`,
  shared by every variant prepared from that release and seed (`kind` names a split
  scheme when a source has several, e.g. EmoMusic's 'mediaeval2013')."""
  name = '_'.join(filter(None, (config.data.source, kind)))
  return os.path.join(os.path.expanduser(config.data.data_dir), 'splits',
                      f'{name}_seed{config.data.split_seed}.csv')


def stratified_split(ids: list[str], quadrants: list[int], seed: int,
                     fractions: tuple = (0.7, 0.15, 0.15)) -> dict[str, str]:
  """song id -> 'train' | 'validation' | 'test', stratified by quadrant. A test fraction
  of 0 cuts train/validation only (e.g. EmoMusic, whose test set is MediaEval's)."""
  if not np.isclose(sum(fractions), 1.0):
    raise ValueError(f'split fractions must sum to 1, got {fractions}')
  ids, q = np.asarray(ids), np.asarray(quadrants)
  rest = fractions[1] + fractions[2]

  def split(x, y, test_size, rs):
    try:
      return train_test_split(x, y, test_size=test_size, stratify=y, random_state=rs)
    except ValueError:  # A quadrant too small to stratify: plain random split.
      logging.warning('quadrants too small to stratify %d songs; splitting at random',
                      len(x))
      return train_test_split(x, y, test_size=test_size, random_state=rs)

  train, other, _, q_other = split(ids, q, rest, seed)
  val, test = (split(other, q_other, fractions[2] / rest, seed + 1)[:2] if fractions[2]
               else (other, []))
  out = {i: 'train' for i in train}
  out.update({i: 'validation' for i in val})
  out.update({i: 'test' for i in test})
  return out


def load_or_create(path: str, ids: list[str], quadrants: list[int], seed: int,
                   fractions: tuple = (0.7, 0.15, 0.15),
                   fixed: dict[str, str] | None = None) -> dict[str, str]:
  """The split stored at `path`, created (atomically) on first use. Songs in `fixed`
  (id -> split, e.g. a release's official test set) keep theirs; the others are cut
  by `fractions`."""
  if os.path.isfile(path):
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    split = dict(zip(df.song_id, df.split))
    missing = sorted(set(ids) - set(split))
    if missing:
      raise ValueError(
          f'{path}: the stored split has no entry for {len(missing)} song(s) '
          f'({", ".join(missing[:5])}{" ..." if len(missing) > 5 else ""}); the dataset '
          'changed since the split was made. Delete the file to make a new split.')
    return {i: split[i] for i in ids}
  fixed = fixed or {}
  free = [k for k, i in enumerate(ids) if i not in fixed]
  split = stratified_split([ids[k] for k in free], [quadrants[k] for k in free], seed,
                           fractions)
  split.update(fixed)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  pd.DataFrame({'song_id': ids, 'split': [split[i] for i in ids]}).to_csv(tmp, index=False)
  os.replace(tmp, path)
  logging.info('wrote a new seeded split (seed %d) to %s', seed, path)
  return split


def fold_of(ids: list[str], folds: int, seed: int) -> dict[str, int]:
  """song id -> fold 0..folds-1: a seeded K-fold partition (scikit-learn's KFold over
  the sorted ids, so it depends only on the set of ids and the seed)."""
  from sklearn.model_selection import KFold
  ids = sorted(ids)
  if not 2 <= folds <= len(ids):
    raise ValueError(f'cannot cut {len(ids)} songs into {folds} folds (need 2 <= folds '
                     '<= songs)')
  out = {}
  for k, (_, held) in enumerate(KFold(folds, shuffle=True, random_state=seed).split(ids)):
    out.update({ids[i]: k for i in held})
  return out

"""Seeded stratified splits: proportions, stratification, stability on disk."""

import collections

import numpy as np
import pytest

from data_prep import splits


def test_stratified_fractions_and_determinism():
  rng = np.random.default_rng()
  ids = [f's{i}' for i in range(400)]
  quads = list(rng.integers(0, 4, 400))
  a = splits.stratified_split(ids, quads, seed=3)
  assert a == splits.stratified_split(ids, quads, seed=3)
  assert a != splits.stratified_split(ids, quads, seed=4)
  counts = collections.Counter(a.values())
  assert counts['train'] == 280 and counts['validation'] == 60 and counts['test'] == 60
  for q in range(4):  # Each quadrant is split close to 70/15/15.
    members = [a[i] for i, qq in zip(ids, quads) if qq == q]
    share = members.count('train') / len(members)
    assert abs(share - 0.7) < 0.03


def test_written_once_and_reused(tmp_path):
  path = str(tmp_path / 'splits' / 'x.csv')
  ids, quads = [f's{i}' for i in range(40)], [i % 4 for i in range(40)]
  first = splits.load_or_create(path, ids, quads, seed=0)
  again = splits.load_or_create(path, ids, quads, seed=99)  # The file wins.
  assert first == again
  with pytest.raises(ValueError, match='no entry for 1 song'):
    splits.load_or_create(path, ids + ['new'], quads + [0], seed=0)

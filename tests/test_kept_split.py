"""The training split kept in memory: its batches are tf.data's (`train_batches` over
the TFRecords), example for example, for every epoch, seed and process's rows."""

import numpy as np
import pytest
import tensorflow as tf

from mer_jax import input_pipeline, kept_split


def _assert_same_batches(got, want):
  assert len(got) == len(want) > 0
  for a, b in zip(got, want):
    assert a.keys() == b.keys()
    for k in b:
      assert a[k].dtype == b[k].dtype, k
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_kept_batches_are_the_tfdata_batches(tiny_prepared):
  _, builder = tiny_prepared
  ds = input_pipeline.load_split(builder, 'train')
  n = input_pipeline.num_examples(builder, 'train')  # 28: 3 full batches of 8.
  kept = kept_split.keep(ds, n, 1 << 30)
  assert isinstance(kept, kept_split.KeptSplit) and kept.num == n
  assert kept.nbytes == kept_split.size_of(ds, n)
  assert 'song_id' not in kept.arrays
  with pytest.raises(ValueError, match=f'has {n} examples, not {n + 1}'):
    kept_split.keep(ds, n + 1, 1 << 30)
  with pytest.raises(ValueError, match=f'more than {n - 1} examples'):
    kept_split.keep(ds, n - 1, 1 << 30)
  for seed, epoch in ((0, 0), (5, 3), (7, 11)):
    want = list(input_pipeline.train_batches(ds, n, 8, seed, epoch))
    _assert_same_batches(list(input_pipeline.train_batches(kept, n, 8, seed, epoch)), want)
    for rows in (slice(0, 2), slice(2, 8)):  # Several processes: their rows only.
      _assert_same_batches(
          list(input_pipeline.train_batches(kept, n, 8, seed, epoch, rows)),
          list(input_pipeline.train_batches(ds, n, 8, seed, epoch, rows)))
  # Epochs differ (the check above compares real orders, not one order twice).
  a, b = (next(input_pipeline.train_batches(kept, n, 8, 0, e)) for e in (0, 1))
  assert not np.array_equal(a['targets'], b['targets'])

  # Real tokens per example, in file order, both ways; against the masks read directly.
  masks = np.stack([ex['attention_mask'] for ex in ds.as_numpy_iterator()])
  counts = masks.astype(np.int64).sum(axis=1)
  np.testing.assert_array_equal(kept_split.token_counts(kept), counts)
  np.testing.assert_array_equal(kept_split.token_counts(ds), counts)
  assert counts.min() > 0


def test_a_split_over_the_budget_is_read_every_epoch(tiny_prepared):
  _, builder = tiny_prepared
  ds = input_pipeline.load_split(builder, 'train')
  n = input_pipeline.num_examples(builder, 'train')
  size = kept_split.size_of(ds, n)
  mel = ds.element_spec['mel']
  assert size > n * int(np.prod(mel.shape)) * 4  # The mels and the rest.
  assert kept_split.keep(ds, n, size - 1) is ds
  assert isinstance(kept_split.keep(ds, n, size), kept_split.KeptSplit)
  # A feature without a fixed shape: not kept (its size is unknown before reading).
  ragged = ds.map(lambda ex: {**ex, 'mel': tf.reshape(ex['mel'], [-1])[:tf.size(
      ex['mel']) - tf.cast(ex['quadrant'], tf.int32)]})
  assert kept_split.size_of(ragged, n) is None
  assert kept_split.keep(ragged, n, 1 << 40) is ragged

"""A training split kept in host memory: read from its TFRecords once per run, then
batched every epoch in the order `input_pipeline.train_batches` uses.

Why: re-reading the split each epoch through tf.data (TFRecord parsing, the full
shuffle buffer, tf.data's threads on the cores the step runs on) cost Model 1's demo
step ~55 ms against ~46 ms on batches already in memory (2 cores, benchmarks/RESULTS.md).
The batches are the same arrays in the same order: `input_pipeline.epoch_order` is the
permutation tf.data's shuffle applies, and nothing in the split's pipeline is random.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class KeptSplit:
  """Every example of a split, in file order: {feature: [num, ...]} (song ids dropped,
  as training batches drop them)."""
  arrays: dict[str, np.ndarray]

  @property
  def num(self) -> int:
    return len(next(iter(self.arrays.values())))

  @property
  def nbytes(self) -> int:
    return sum(v.nbytes for v in self.arrays.values())


def size_of(ds: tf.data.Dataset, num: int) -> int | None:
  """Bytes of `num` examples of `ds` (a `load_split` dataset) as arrays; None when a
  feature has no fixed shape or is not a number."""
  total = 0
  for name, spec in ds.element_spec.items():
    if name == 'song_id':
      continue
    if not spec.shape.is_fully_defined() or not (spec.dtype.is_floating
                                                  or spec.dtype.is_integer):
      return None
    total += num * int(np.prod(spec.shape, dtype=np.int64)) * spec.dtype.size
  return total


def keep(ds: tf.data.Dataset, num: int, max_bytes: int) -> KeptSplit | tf.data.Dataset:
  """`ds` (`load_split`'s dataset of `num` examples) read into memory when its arrays
  take at most `max_bytes`; otherwise `ds` itself (read again every epoch). The arrays
  are allocated once at their final size and filled chunk by chunk (no second copy)."""
  size = size_of(ds, num)
  if size is None or size > max_bytes:
    return ds
  arrays = {k: np.empty((num, *spec.shape), spec.dtype.as_numpy_dtype)
            for k, spec in ds.element_spec.items() if k != 'song_id'}
  start = 0
  for chunk in ds.batch(256).prefetch(1).as_numpy_iterator():
    n = len(chunk['mask'])
    if start + n > num:
      raise ValueError(f'the training split has more than {num} examples')
    for k, v in arrays.items():
      v[start:start + n] = chunk[k]
    start += n
  if start != num:
    raise ValueError(f'the training split has {start} examples, not {num}')
  return KeptSplit(arrays)


def batches(kept: KeptSplit, order: np.ndarray, batch_size: int,
            rows: slice | None = None) -> Iterator[dict[str, np.ndarray]]:
  """The full batches of `kept`'s examples taken in `order` (the last partial batch
  dropped); `rows`: only those rows of each batch (several processes)."""
  n = len(order) // batch_size
  idx = order[:n * batch_size].reshape(n, batch_size)
  if rows is not None:
    idx = idx[:, rows]
  for i in idx:
    yield {k: v[i] for k, v in kept.arrays.items()}


def token_counts(split: KeptSplit | tf.data.Dataset) -> np.ndarray:
  """[examples] real tokens (attention mask sums) per example, in file order."""
  if isinstance(split, KeptSplit):
    return split.arrays['attention_mask'].sum(axis=1, dtype=np.int64)
  return np.fromiter(split.map(tf.autograph.experimental.do_not_convert(
      lambda ex: tf.reduce_sum(tf.cast(ex['attention_mask'], tf.int64)))
  ).as_numpy_iterator(), np.int64)

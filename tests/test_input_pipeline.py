"""Device prefetch of batches; each process's rows of the global batches."""

import jax
import numpy as np

from mer_jax import input_pipeline


def test_prefetch_keeps_order_and_runs_ahead_by_size():
  pulled = []

  def source():
    for i in range(7):
      pulled.append(i)
      yield {'x': np.full((2, 3), i, np.float32)}

  put = jax.device_put
  it = input_pipeline.prefetch(source(), 3, put)
  first = next(it)
  assert pulled == [0, 1, 2]  # `size` batches transferred before the first is used.
  assert isinstance(first['x'], jax.Array) and float(first['x'][0, 0]) == 0
  rest = list(it)
  assert [float(b['x'][0, 0]) for b in rest] == [1, 2, 3, 4, 5, 6]
  assert pulled == list(range(7))
  assert [float(b['x'][0, 0]) for b in input_pipeline.prefetch(source(), 0, put)] == \
      list(range(7))


def test_each_process_rows_rebuild_one_process_batches(tiny_prepared):
  """Several processes (train_batches / eval_batches with `rows`): the processes' rows,
  put side by side, are the one-process batches, example for example; a process whose
  rows lie past the data yields padding, so every process yields as many batches."""
  _, builder = tiny_prepared
  ds = input_pipeline.load_split(builder, 'train')
  n = input_pipeline.num_examples(builder, 'train')  # 28: 3 full batches of 8.
  for epoch in (0, 3):
    whole = list(input_pipeline.train_batches(ds, n, 8, 5, epoch))
    parts = [list(input_pipeline.train_batches(ds, n, 8, 5, epoch, rows))
             for rows in (slice(0, 2), slice(2, 6), slice(6, 8))]
    assert len(whole) == 3 and all(len(p) == 3 for p in parts)
    for i, batch in enumerate(whole):
      assert batch.keys() == parts[0][i].keys()
      for k in batch:
        np.testing.assert_array_equal(
            np.concatenate([p[i][k] for p in parts]), batch[k], err_msg=k)
  # The permutation the processes compute is the one the shuffle applies.
  order = input_pipeline.epoch_order(n, 5, 3)
  assert sorted(order.tolist()) == list(range(n))
  targets = np.stack([ex['targets'] for ex in ds.as_numpy_iterator()])
  np.testing.assert_array_equal(
      targets[order[:24]], np.concatenate([b['targets'] for b in whole]))

  val = input_pipeline.load_split(builder, 'validation')  # 6 songs: batches 4 + 2 (+2 pad).
  whole = list(input_pipeline.eval_batches(val, 4))
  parts = [list(input_pipeline.eval_batches(val, 4, rows, num=6))
           for rows in (slice(0, 2), slice(2, 4))]
  assert len(whole) == 2 and [len(p) for p in parts] == [2, 2]
  assert parts[1][1]['mask'].tolist() == [0, 0]  # Rows 2-3 of the last batch: padding.
  for i, batch in enumerate(whole):
    for k in batch:
      got = np.concatenate([p[i][k] for p in parts])
      if k == 'song_id':
        assert [bytes(x) if x else b'' for x in got] == \
            [bytes(x) if x else b'' for x in batch[k]]
      else:
        np.testing.assert_array_equal(got, batch[k], err_msg=k)

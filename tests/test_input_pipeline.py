"""Device prefetch of batches."""

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

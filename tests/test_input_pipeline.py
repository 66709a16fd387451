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


def test_text_length_cuts_only_padding_and_keeps_embeddings(tiny_prepared, tiny_bert_dir):
  """A fine-tuned tower reads the prepared ids cut to the longest lyrics (rounded up to
  8, at most the stored length); load_split cuts the columns; padding columns (mask 0)
  leave the tower's embeddings as they were."""
  import os

  from mer_jax import bert
  _, builder = tiny_prepared
  cols = {s: input_pipeline.read_split(builder, s, ('token_ids', 'attention_mask'))
          for s in input_pipeline.split_names(builder)}
  longest = max(int(c['attention_mask'].sum(axis=1).max()) for c in cols.values())
  stored = cols['train']['token_ids'].shape[1]
  length = input_pipeline.text_length(builder)
  assert length == min(stored, 8 * int(np.ceil(longest / 8)))
  assert os.path.isfile(os.path.join(builder.data_dir, 'text_length.json'))
  assert input_pipeline.text_length(builder) == length  # From the cache.
  for c in cols.values():
    assert not c['attention_mask'][:, length:].any()
  cut = list(input_pipeline.eval_batches(
      input_pipeline.load_split(builder, 'train', text_length=40), 32))[0]
  n = len(cols['train']['token_ids'])
  np.testing.assert_array_equal(cut['token_ids'][:n], cols['train']['token_ids'][:, :40])
  assert input_pipeline.dummy_batch(builder, None, 4, 40)['token_ids'].shape == (4, 40)

  # Tiny lyrics fill their 48 tokens: 16 padding columns more must change nothing.
  config, params = bert.load_bert(tiny_bert_dir)
  tower = bert.TextTower(config)
  ids, mask = cols['train']['token_ids'], cols['train']['attention_mask']
  short = bert.embed(tower, params, ids, mask)
  pad = np.zeros((n, 16), np.int32)
  long = bert.embed(tower, params, np.concatenate([ids, pad], 1),
                    np.concatenate([mask, pad], 1))
  np.testing.assert_allclose(long, short, rtol=1e-5, atol=1e-6)
  assert np.abs(short).max() > 1e-2


def test_validation_batches_are_kept_after_the_first_pass(tiny_prepared):
  _, builder = tiny_prepared
  splits = {s: input_pipeline.load_split(builder, s) for s in ('validation', 'test')}
  counts = {s: input_pipeline.num_examples(builder, s) for s in splits}
  batches = input_pipeline.EvalBatches(splits, counts, 4)
  first = list(batches('validation'))
  assert 'validation' in batches.kept and batches('validation') is batches.kept['validation']
  direct = list(input_pipeline.eval_batches(splits['validation'], 4))
  assert len(first) == len(direct) == 2
  for a, b in zip(batches('validation'), direct):
    for k in b:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  list(batches('test'))
  assert 'test' not in batches.kept  # Read once per run: not kept.
  small = input_pipeline.EvalBatches(splits, counts, 4, keep_bytes=1)
  assert len(list(small('validation'))) == 2 and not small.kept  # Too big: read again.


def test_the_pipelines_leave_no_autograph_file(tiny_prepared, tmp_path):
  """tf.data functions are not converted by AutoGraph, which wrote each to a
  /tmp/__autograph_generated_file*.py that only an orderly exit removes (a killed run
  left them). In a fresh process (AutoGraph caches a conversion per code object), every
  pipeline this module builds, then the temporary folder's files before exit."""
  import os
  import subprocess
  import sys
  _, builder = tiny_prepared
  temp = tmp_path / 'tmp'
  temp.mkdir()
  script = f'''
import os, tempfile
import tensorflow_datasets as tfds
from mer_jax import input_pipeline as ip
builder = tfds.builder_from_directory({builder.data_dir!r})
ds = ip.load_split(builder, 'train')
n = ip.num_examples(builder, 'train')
assert len(list(ip.train_batches(ds, n, 8, 5, 0))) == 3
assert len(list(ip.train_batches(ds, n, 8, 5, 0, slice(0, 2)))) == 3
from mer_jax import kept_split
assert len(list(ip.train_batches(kept_split.keep(ds, n, 1 << 30), n, 8, 5, 0))) == 3
assert len(kept_split.token_counts(ds)) == n
val = ip.load_split(builder, 'validation')
assert len(list(ip.eval_batches(val, 4, slice(2, 4), num=6))) == 2
assert len(ip.read_split(builder, 'validation', ('song_id', 'mel'))['mel']) == 6
print(sorted(os.listdir(tempfile.gettempdir())))
'''
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  done = subprocess.run([sys.executable, '-c', script], cwd=repo, capture_output=True,
                        text=True, env={**os.environ, 'TMPDIR': str(temp)}, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.strip().splitlines()[-1] == '[]'

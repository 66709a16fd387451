"""Prepared TFRecords -> batches of numpy arrays (through tfds / tf.data).

A batch is a dict:
  mel         float32 [batch, n_mels, num_frames]   log-mel, dB (-80..0)
  token_ids   int32   [batch, max_length]           WordPiece ids ([CLS] ... [SEP] pad)
  attention_mask int32 [batch, max_length]          1 on real tokens
  lyrics_emb  float32 [batch, text_dim]             frozen text-tower embedding
  audio_emb   float32 [batch, audio_dim]            precomputed song embedding (frozen
                                                    musicnn, the user's embeddings)
  musicnn_mel float32 [batch, frames, 96]           musicnn's input (fine-tuned musicnn)
  musicnn_frames int32 [batch]                      its real frames
  targets     float32 [batch, 2]                    (valence, arousal), 0..1
  mask        float32 [batch]                       1 = real example, 0 = eval padding
  congruence  float32 [batch]                       Siamese cosine (gated fusion only)
  quadrant    int32   [batch]                       0..3 = Q1..Q4 of the labels
  official_quadrant int32 [batch]                   the release's own label, -1 none
  congruent   int32   [batch]                       1, 0 (lyrics disagree), -1 unknown
  song_id     bytes   [batch]                       (eval batches only)

The frozen text tower is run once per prepared dataset and encoder; its embeddings are
cached next to the prepared data (`lyrics_emb_<hash>.npz`) and joined to the examples by
song id, so the train loop never runs BERT. Other per-song values computed outside the
TFRecords (the congruence of Experiment 3) are joined the same way (`lookups`).
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import json
import logging
import os
from typing import Callable, Iterable, Iterator

import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from mer_jax import kept_split

# TensorFlow only feeds data; keep it off any accelerator JAX uses.
tf.config.set_visible_devices([], 'GPU')
# tf.data functions (map, filter) run as written, not through AutoGraph: they have no
# tensor-dependent Python control flow, and AutoGraph writes each function it converts
# to a /tmp/__autograph_generated_file*.py that only an orderly exit removes (every
# killed run left some behind).
as_written = tf.autograph.experimental.do_not_convert


def split_names(builder: tfds.core.DatasetBuilder) -> list[str]:
  return [s for s in ('train', 'validation', 'test') if s in builder.info.splits]


def num_examples(builder: tfds.core.DatasetBuilder, split: str) -> int:
  return builder.info.splits[split].num_examples


def model_mel(mel, db_offset: float = 0.0):
  """The model's log-mel input from a stored one (tf or numpy): re-referenced by
  `db_offset` dB, floored at -80 dB.

  Prepared data keeps dB down to `audio_features.STORED_FLOOR` (and pads with it), so
  adding 10 log10(own max power / other max power) and flooring equals extracting the
  songs against the other max power, floor and padding included.
  """
  from mer_jax.audio_features import DB_FLOOR, STORED_FLOOR
  if not db_offset < DB_FLOOR - STORED_FLOOR:
    raise ValueError(f'dB offset {db_offset:.2f} is beyond the '
                     f'{DB_FLOOR - STORED_FLOOR:g} dB the prepared features keep')
  if isinstance(mel, np.ndarray):
    return np.maximum(mel + np.float32(db_offset), np.float32(DB_FLOOR))
  return tf.maximum(mel + db_offset, DB_FLOOR)


def read_split(builder, split: str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
  """Features `keys` of every example of a split, in file order: {key: [n, ...]}
  (e.g. 'mel', 'valence', 'song_id'; see the TFDS builder's features). 'mel' is the
  model's input (`model_mel`: floored at -80 dB)."""
  ds = builder.as_dataset(split=split, shuffle_files=False)
  ds = ds.map(as_written(
      lambda ex: {k: model_mel(ex[k]) if k == 'mel' else ex[k] for k in keys}))
  parts = list(ds.batch(256).as_numpy_iterator())
  return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def text_length(builder: tfds.core.DatasetBuilder, multiple: int = 8) -> int:
  """The token length a fine-tuned text tower needs for this prepared data: its longest
  lyrics ([CLS] ... [SEP], every split) rounded up to `multiple`, at most the stored
  max_length; cached next to the prepared data (`text_length.json`).

  Prepared ids are padded to config.text.max_length; the tower masks padding out of
  attention and of the mean, so cutting the all-padding columns leaves every embedding
  as it was (to float rounding) while a fine-tuned step costs ~length^1..2 (MiniLM at
  batch 16: 2.0 s per step at 128 tokens, 1.3 s at 96)."""
  path = os.path.join(builder.data_dir, 'text_length.json')
  stored = builder.info.features['token_ids'].shape[0]
  if os.path.isfile(path):
    with open(path) as f:
      return int(json.load(f)['length'])
  longest = max([int(read_split(builder, s, ('attention_mask',))['attention_mask']
                     .sum(axis=1).max(initial=1)) for s in split_names(builder)] or [1])
  length = min(stored, -(-longest // multiple) * multiple)
  from mer_jax import caches
  caches.write_atomically(path, json.dumps({'length': length, 'longest': longest,
                                            'stored': stored}).encode())
  return length


def lyrics_embeddings(builder: tfds.core.DatasetBuilder,
                      config: ml_collections.ConfigDict) -> dict[bytes, np.ndarray]:
  """song id -> frozen text-tower embedding [text_dim], computed once and cached."""
  from mer_jax import bert, tokenization
  ident = tokenization.encoder_identity(config.text.encoder)
  key = json.dumps({'encoder': ident, 'pooling': config.text.pooling}, sort_keys=True)
  path = os.path.join(builder.data_dir,
                      f'lyrics_emb_{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz')
  if os.path.isfile(path):
    with np.load(path) as z:
      return {bytes(k): v for k, v in zip(z['song_id'], z['emb'])}
  cols = [read_split(builder, s, ('song_id', 'token_ids', 'attention_mask'))
          for s in split_names(builder)]
  ids = np.concatenate([c['song_id'] for c in cols])
  bert_config, params = bert.load_bert(config.text.encoder)
  tower = bert.TextTower(bert_config, pooling=config.text.pooling)
  logging.info('embedding %d lyrics with the frozen %s tower', len(ids),
               config.text.encoder)
  emb = bert.embed(tower, params, np.concatenate([c['token_ids'] for c in cols]),
                   np.concatenate([c['attention_mask'] for c in cols]),
                   config.train.text_batch_size)
  tmp = path + '.tmp.npz'
  np.savez(tmp, song_id=np.asarray(ids, dtype=bytes), emb=emb)
  os.replace(tmp, path)
  return dict(zip(ids, emb))


def lookups(builder: tfds.core.DatasetBuilder, config: ml_collections.ConfigDict,
            keys: tuple[str, ...]) -> dict[str, dict]:
  """The per-song values the model's input `keys` need from outside the TFRecords:
  'lyrics_emb' (frozen text tower), 'audio_emb' (the audio front-end's song
  embeddings: frozen musicnn, the user's files) and 'congruence' (a Siamese run's
  report)."""
  from mer_jax import frontends
  out = {}
  if frontends.AUDIO_EMB in keys:
    out[frontends.AUDIO_EMB] = frontends.get(config).embeddings(builder)
  if 'lyrics_emb' in keys:
    out['lyrics_emb'] = lyrics_embeddings(builder, config)
  if 'congruence' in keys:
    from mer_jax.tasks import siamese
    out['congruence'] = (siamese.read_congruence_file(config.model.congruence_file)
                         if config.model.get('congruence_file') else
                         siamese.read_congruence(config.model.congruence_workdir))
  return out


HELDOUT = 'heldout'  # Split name of the training songs a cross-fitting run holds out.


def hold_out_fold(builder, splits: dict[str, tf.data.Dataset],
                  config: ml_collections.ConfigDict) -> tuple[dict, int]:
  """Cross-fitting (`config.data.folds` >= 2): the 'train' split without fold
  `config.data.holdout_fold` of its songs (`data_prep.splits.fold_of`, seeded by
  `config.data.split_seed`), which becomes split 'heldout' (evaluated, never trained
  on). Returns (splits, number of training examples)."""
  n_train = num_examples(builder, 'train')
  folds, holdout = config.data.get('folds', 0), config.data.get('holdout_fold', -1)
  if folds < 2:
    return splits, n_train
  from data_prep import splits as splits_lib
  if not 0 <= holdout < folds:
    raise ValueError(f'config.data.holdout_fold must be 0..{folds - 1} with '
                     f'config.data.folds = {folds}, got {holdout}')
  ids = [i.decode() for i in read_split(builder, 'train', ('song_id',))['song_id']]
  fold = splits_lib.fold_of(ids, folds, config.data.split_seed)
  held = [i for i in ids if fold[i] == holdout]
  table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
      tf.constant(held), tf.ones(len(held), tf.int64)), 0)
  is_held = lambda ex: table.lookup(ex['song_id']) > 0  # noqa: E731
  out = dict(splits)
  out['train'] = splits['train'].filter(
      as_written(lambda ex: tf.logical_not(is_held(ex))))
  out[HELDOUT] = splits['train'].filter(as_written(is_held))
  logging.info('cross-fitting: fold %d of %d (%d training songs held out)', holdout,
               folds, len(held))
  return out, n_train - len(held)


def load_split(builder, split: str, lookups: dict[str, dict] | None = None,
               db_offset: float = 0.0, text_length: int | None = None
               ) -> tf.data.Dataset:
  """Examples of one split as model-ready dicts (unbatched, in file order).

  `lookups` maps a feature name (e.g. 'lyrics_emb', 'congruence') to {song id: value};
  every song of the split must be in each. `db_offset` re-references the log-mels to
  another dataset's max power (cross-dataset evaluation): 10 log10(own max power /
  other max power); see `model_mel`. `text_length`: token ids and mask cut to that many
  columns (`text_length`; None keeps the stored max_length).
  """
  model_mel(np.zeros(1, np.float32), db_offset)  # Checks the offset before any work.
  ds = builder.as_dataset(split=split, shuffle_files=False)
  extra = frontend_features(builder)
  tables = {}
  for name, values in (lookups or {}).items():
    ids = list(values)
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(ids),
                                            tf.range(len(ids), dtype=tf.int64)), -1)
    tables[name] = (table, tf.constant(
        np.stack([np.asarray(values[i], np.float32) for i in ids])))

  def fmt(ex):
    out = {'mel': model_mel(ex['mel'], db_offset),
           'token_ids': ex['token_ids'][:text_length],
           'attention_mask': ex['attention_mask'][:text_length],
           'targets': tf.stack([ex['valence'], ex['arousal']]),
           # Annotator std per dimension (0..1 scale), NaN where the release has none.
           'target_std': tf.stack([ex['valence_std'], ex['arousal_std']]),
           'mask': tf.constant(1.0, tf.float32),
           'quadrant': tf.cast(ex['quadrant'], tf.int32),
           'official_quadrant': ex['official_quadrant'],
           'congruent': tf.cast(ex['congruent'], tf.int32),
           'song_id': ex['song_id']}
    for k in extra:  # An audio front-end's own inputs (the fine-tuned musicnn's).
      out[k] = tf.cast(ex[k], tf.float32 if ex[k].dtype.is_floating else tf.int32)
    for name, (table, values) in tables.items():
      idx = table.lookup(ex['song_id'])
      with tf.control_dependencies([tf.debugging.assert_non_negative(
          idx, message=f'a song of split {split!r} has no {name!r} value')]):
        out[name] = tf.gather(values, idx)
    return out

  return ds.map(as_written(fmt), num_parallel_calls=tf.data.AUTOTUNE)


# The features every prepared dataset has (data_prep.tfds_builder); any other is an
# audio front-end's own input (`frontends.PreparedInputs.features`), which batches carry
# as float32 / int32.
CORE_FEATURES = ('song_id', 'mel', 'token_ids', 'attention_mask', 'valence', 'arousal',
                 'quadrant', 'official_quadrant', 'congruent', 'valence_std',
                 'arousal_std')


def frontend_features(builder) -> list[str]:
  """The prepared features an audio front-end added (e.g. musicnn_mel, musicnn_frames)."""
  return [k for k in builder.info.features if k not in CORE_FEATURES]


def dummy_batch(builder, lookups: dict[str, dict] | None, batch_size: int,
                text_length: int | None = None) -> dict:
  """A batch of zeros with the shapes of real batches (for parameter init)."""
  n_mels, frames = builder.info.features['mel'].shape
  max_length = text_length or builder.info.features['token_ids'].shape[0]
  batch = {'mel': np.zeros((batch_size, n_mels, frames), np.float32),
           'token_ids': np.zeros((batch_size, max_length), np.int32),
           'attention_mask': np.ones((batch_size, max_length), np.int32),
           'targets': np.zeros((batch_size, 2), np.float32),
           'target_std': np.zeros((batch_size, 2), np.float32),
           'mask': np.ones((batch_size,), np.float32),
           'quadrant': np.zeros((batch_size,), np.int32)}
  for k in frontend_features(builder):
    f = builder.info.features[k]
    batch[k] = np.zeros((batch_size, *f.shape),
                        np.float32 if np.dtype(f.np_dtype).kind == 'f' else np.int32)
  for name, values in (lookups or {}).items():
    shape = np.shape(next(iter(values.values())))
    batch[name] = np.zeros((batch_size, *shape), np.float32)
  return batch


def epoch_order(num: int, seed: int, epoch: int) -> np.ndarray:
  """The order [num] in which an epoch visits the examples (indices in file order): the
  permutation `train_batches`' shuffle applies (tf.data's shuffle of a full buffer
  draws the same positions whatever the elements are)."""
  ds = tf.data.Dataset.range(num).shuffle(num, seed=_shuffle_seed(seed, epoch),
                                          reshuffle_each_iteration=False)
  return np.fromiter(ds.as_numpy_iterator(), np.int64, num)


def _shuffle_seed(seed: int, epoch: int) -> int:
  return seed * 100_003 + epoch


def train_batches(ds: tf.data.Dataset | kept_split.KeptSplit, num: int, batch_size: int,
                  seed: int, epoch: int, rows: slice | None = None) -> Iterator[dict]:
  """One epoch of shuffled full batches of `load_split`'s `num` examples (or of the
  same split kept in memory: `kept_split.keep`, the same batches).

  The last partial batch is dropped. The order depends only on (seed, epoch), so an
  epoch can be replayed exactly. `rows` (several processes): only those rows of each
  batch, from the examples this process needs; the global batches are the same for any
  number of processes and devices.
  """
  if isinstance(ds, kept_split.KeptSplit):
    return kept_split.batches(ds, epoch_order(num, seed, epoch), batch_size, rows)
  ds = ds.map(as_written(lambda ex: {k: v for k, v in ex.items() if k != 'song_id'}))
  if rows is not None and (rows.start, rows.stop) != (0, batch_size):
    return _rows_of(ds, epoch_order(num, seed, epoch), batch_size, rows)
  ds = ds.shuffle(num, seed=_shuffle_seed(seed, epoch), reshuffle_each_iteration=False)
  ds = ds.batch(batch_size, drop_remainder=True).prefetch(2)
  return ds.as_numpy_iterator()


def _rows_of(ds: tf.data.Dataset, order: np.ndarray, batch_size: int, rows: slice
             ) -> Iterator[dict]:
  """`rows` of each full batch of `ds`'s examples taken in `order`. TFRecord files have
  no random access: this process reads the split through and keeps only the examples
  it feeds this epoch (1/processes of them; one process's shuffle buffer holds all)."""
  n = len(order) // batch_size
  mine = order[:n * batch_size].reshape(n, batch_size)[:, rows]
  wanted = np.zeros(len(order), bool)
  wanted[mine.ravel()] = True
  wanted_t = tf.constant(wanted)
  kept = ds.enumerate().filter(as_written(lambda i, ex: tf.gather(wanted_t, i)))
  cache = {int(i): ex for i, ex in kept.as_numpy_iterator()}
  for idx in mine:
    yield {k: np.stack([cache[i][k] for i in idx]) for k in cache[idx[0]]}


def eval_batches(ds: tf.data.Dataset, batch_size: int, rows: slice | None = None,
                 num: int | None = None) -> Iterator[dict]:
  """Every example of `load_split`'s dataset in order; the last batch is padded with
  mask = 0. `rows` (several processes): those rows of each batch only, padded to their
  number; with `num` (the split's examples) every process yields the same number of
  batches, ceil(num / batch_size)."""
  if rows is None or (rows.start, rows.stop) == (0, batch_size):
    yield from _padded(ds, batch_size)
    return
  if num is None:
    raise ValueError('eval_batches: the rows of several processes need num')
  start, stop = rows.start, rows.stop
  mine = ds.enumerate().filter(as_written(
      lambda i, ex: (i % batch_size >= start) & (i % batch_size < stop)))
  mine = mine.map(as_written(lambda i, ex: ex))
  count = 0
  for batch in _padded(mine, stop - start):
    count += 1
    yield batch
  for _ in range(count, -(-num // batch_size)):  # This process's rows lie past the data.
    yield {k: np.zeros((stop - start, *spec.shape), spec.dtype.as_numpy_dtype)
           for k, spec in mine.element_spec.items()}


class EvalBatches:
  """split -> `eval_batches` of a run's splits. The validation split is read every
  epoch: its batches are kept in memory after the first pass when they take at most
  `keep_bytes` (a tf.data pass over the TFRecords cost ~0.14 s of a demo epoch's 2.6 s)."""

  def __init__(self, splits: dict, counts: dict, batch_size: int,
               rows: slice | None = None, keep_bytes: int = 1 << 30):
    self.splits, self.counts, self.batch_size, self.rows = splits, counts, batch_size, rows
    self.keep_bytes = keep_bytes
    self.kept: dict[str, list[dict]] = {}

  def __call__(self, split: str) -> Iterable[dict]:
    if split in self.kept:
      return self.kept[split]
    batches = eval_batches(self.splits[split], self.batch_size, self.rows,
                           self.counts[split])
    if split != 'validation':
      return batches
    return self._keep(split, batches)

  def _keep(self, split: str, batches: Iterator[dict]) -> Iterator[dict]:
    kept, size = [], 0
    for batch in batches:
      size += sum(v.nbytes for v in batch.values())
      if kept is not None:
        kept.append(batch)
        if size > self.keep_bytes:
          kept = None  # Too big to keep: read every time.
      yield batch
    if kept is not None:
      self.kept[split] = kept


def _padded(ds: tf.data.Dataset, batch_size: int) -> Iterator[dict]:
  for batch in ds.batch(batch_size).prefetch(2).as_numpy_iterator():
    pad = batch_size - batch['mask'].shape[0]
    if pad:
      batch = {k: np.concatenate([v, np.zeros((pad, *v.shape[1:]), v.dtype)])
               for k, v in batch.items()}
    yield batch


def prefetch(batches: Iterable[dict], size: int, put: Callable[[dict], dict]
             ) -> Iterator[dict]:
  """`put(batch)` (e.g. a sharded `jax.device_put`) of each batch, `size` batches ahead
  of the consumer: the transfers are asynchronous, so they overlap the running step."""
  it = iter(batches)
  queue = collections.deque(put(b) for b in itertools.islice(it, max(size, 1)))
  while queue:
    yield queue.popleft()
    queue.extend(put(b) for b in itertools.islice(it, 1))

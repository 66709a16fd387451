"""Training epochs and the input pipeline on prepared data, side by side.

    python benchmarks/epoch.py --out=benchmarks/out

Prepares `--songs` generated 30 s songs (1292-frame log-mels, MiniLM lyrics) with the
project's own preparation, then times, with the demo's Model 4 widths (8/16/32/64):
  - frozen text tower: one training epoch (the train loop's pipeline, device prefetch
    and jitted step) of the bimodal model with the frozen MiniLM vs the audio-only
    model. The lyrics embeddings are computed once per dataset (timed on their own,
    'one-off'), so an epoch only adds a 384-d input and a small MLP;
  - input pipeline: examples/s from the TFRecords to sharded device batches, alone, vs
    the examples/s the train step consumes.
Medians over `--repeats` epochs after a warm-up epoch (compilation), the variants timed
in turns (an audio-only epoch, a bimodal epoch, a pipeline-only pass, again). Writes
<out>/epoch.csv and .md (benchmarks/common.py).
"""

from __future__ import annotations

import functools
import itertools
import os
import sys
import tempfile
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from benchmarks import common  # noqa: E402

flags.DEFINE_string('out', 'benchmarks/out', 'Folder for epoch.csv / .md.')
flags.DEFINE_integer('songs', 96, 'Generated 30 s songs (70 % are training songs).')
flags.DEFINE_integer('repeats', 3, 'Timed epochs per variant.')
FLAGS = flags.FLAGS


def _config(root: str, modality: str):
  from configs import demo
  config = demo.get_config()
  config.data.name = 'bench'
  config.data.root = os.path.join(root, 'songs')
  config.data.data_dir = os.path.join(root, 'prepared')
  config.data.synthetic.num_songs = FLAGS.songs
  config.data.synthetic.duration_s = 30.0
  config.audio.num_frames = 1292
  config.model.modality = modality
  return config


def _epoch_fns(config, builder) -> tuple[Callable[[], None], Callable[[], None], int]:
  """(one training epoch, the input pipeline alone for an epoch, examples per epoch):
  no-argument callables, each call a new epoch (a new shuffle), compiled and warmed."""
  from mer_jax import input_pipeline, models, train
  keys = models.input_keys(config)
  lookups = input_pipeline.lookups(builder, config, keys)
  ds = input_pipeline.load_split(builder, 'train', lookups)
  n = input_pipeline.num_examples(builder, 'train')
  bs = config.train.batch_size
  mesh = train.make_mesh()
  put = functools.partial(train.device_batch, keys=keys,
                          sharding=NamedSharding(mesh, P('data')))
  model = models.create_model(config)
  dummy = input_pipeline.dummy_batch(builder, lookups, bs)
  state = train.create_train_state(config, model, jax.random.key(0),
                                   {k: dummy[k] for k in keys}, 1000)
  state = jax.device_put(state, NamedSharding(mesh, P()))
  step = jax.jit(train.train_step, donate_argnums=0)
  epochs = itertools.count()

  def batches():
    return input_pipeline.prefetch(
        input_pipeline.train_batches(ds, n, bs, config.seed, next(epochs)), 2, put)

  def one_epoch():
    nonlocal state
    for b in batches():
      state, m = step(state, b, jax.random.key(1))
    jax.block_until_ready(m.loss.compute())

  def pipeline_only():
    for b in batches():
      pass
    jax.block_until_ready(b)

  one_epoch()  # Compiles.
  pipeline_only()
  return one_epoch, pipeline_only, (n // bs) * bs


def main(argv):
  del argv
  from data_prep import prepare
  from mer_jax import input_pipeline
  logging.set_verbosity(logging.WARNING)
  with tempfile.TemporaryDirectory() as tmp:
    builder = prepare.prepare(_config(tmp, 'audio'))
    bimodal = _config(tmp, 'bimodal')
    t0 = time.perf_counter()
    input_pipeline.lookups(builder, bimodal, ('lyrics_emb',))  # Embeds, caches.
    embed_s = time.perf_counter() - t0
    audio_epoch, pipeline_only, n = _epoch_fns(_config(tmp, 'audio'), builder)
    bimodal_epoch, _, _ = _epoch_fns(bimodal, builder)
    times = common.interleaved_medians(
        {'audio': audio_epoch, 'bimodal': bimodal_epoch, 'pipeline': pipeline_only},
        FLAGS.repeats)
  audio_s, bi_s, pipe_s = times['audio'], times['bimodal'], times['pipeline']
  base = 'audio only (Model 4 8/16/32/64)'
  bench = f'epoch of {n} songs, batch 16'
  rows = [
      {'benchmark': bench, 'variant': base, 'median_s': audio_s, 'unit_per_s': n / audio_s,
       'ratio': 1.0, 'baseline_variant': base},
      {'benchmark': bench, 'variant': 'bimodal, frozen MiniLM', 'median_s': bi_s,
       'unit_per_s': n / bi_s, 'ratio': audio_s / bi_s, 'baseline_variant': base},
      {'benchmark': bench, 'variant': f'one-off: embed {FLAGS.songs} lyrics (cached)',
       'median_s': embed_s, 'unit_per_s': FLAGS.songs / embed_s, 'ratio': float('nan'),
       'baseline_variant': ''},
      {'benchmark': 'input pipeline', 'variant': 'train step consumption (audio only)',
       'median_s': audio_s, 'unit_per_s': n / audio_s, 'ratio': 1.0,
       'baseline_variant': 'train step consumption (audio only)'},
      {'benchmark': 'input pipeline', 'variant': 'TFRecords -> device batches, alone',
       'median_s': pipe_s, 'unit_per_s': n / pipe_s, 'ratio': audio_s / pipe_s,
       'baseline_variant': 'train step consumption (audio only)'},
  ]
  common.write_table(
      rows, FLAGS.out, 'epoch',
      f'Training epoch and input pipeline ({jax.default_backend()}, {os.cpu_count()} '
      'cores; 128 x 1292 log-mels; ratio = speed vs the baseline: < 1 is slower)',
      unit='songs/s')


if __name__ == '__main__':
  app.run(main)

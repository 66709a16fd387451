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

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from benchmarks import common  # noqa: E402

flags.DEFINE_string('out', 'benchmarks/out', 'Folder for epoch.csv / .md.')
flags.DEFINE_integer('songs', 96, 'Generated 30 s songs (70 % are training songs).')
flags.DEFINE_integer('repeats', 3, 'Timed epochs per variant.')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  from data_prep import prepare
  from mer_jax import input_pipeline
  logging.set_verbosity(logging.WARNING)
  with tempfile.TemporaryDirectory() as tmp:
    builder = prepare.prepare(common.demo_config(tmp, 'audio', FLAGS.songs))
    bimodal = common.demo_config(tmp, 'bimodal', FLAGS.songs)
    t0 = time.perf_counter()
    input_pipeline.lookups(builder, bimodal, ('lyrics_emb',))  # Embeds, caches.
    embed_s = time.perf_counter() - t0
    audio_epoch, pipeline_only, n = common.epoch_fns(
        common.demo_config(tmp, 'audio', FLAGS.songs), builder)
    bimodal_epoch, _, _ = common.epoch_fns(bimodal, builder)
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

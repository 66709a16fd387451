"""Self-supervised pretraining throughput at the demo's size, side by side with the
supervised demo epoch it prepares for.

    python benchmarks/pretrain.py --out=benchmarks/out

Prepares `--songs` generated 6 s songs (256-frame log-mels, as the demo) with the
project's own preparation, then times training epochs (the train loop's pipeline,
device prefetch and jitted step; batch 32, the demo's VGG 8/16/32/64) of:
  - supervised, audio only (the demo's Model 4 on its log-mels);
  - pretraining, 'simclr' (configs/demo_pretrain.py: two views of 128-frame crops with
    SpecAugment masks, NT-Xent over 64 views);
  - pretraining, 'masking' (two views of the whole window, 90 % of 16 x 16 tiles masked).
songs/s = training songs per epoch / median epoch time; the variants timed in turns.
Writes <out>/pretrain.csv and .md (benchmarks/common.py).
"""

from __future__ import annotations

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from benchmarks import common  # noqa: E402

flags.DEFINE_string('out', 'benchmarks/out', 'Folder for pretrain.csv / .md.')
flags.DEFINE_integer('songs', 64, 'Generated 6 s songs (70 % are training songs).')
flags.DEFINE_integer('repeats', 3, 'Timed epochs per variant.')
FLAGS = flags.FLAGS


def configs(root: str) -> dict:
  """variant -> config, all on the same generated songs."""
  from configs import demo, demo_pretrain
  out = {}
  for name, get in (('supervised, audio only (demo Model 4)', demo.get_config),
                    ('pretraining, simclr (2 x 128-frame crops + masks)',
                     demo_pretrain.get_config),
                    ('pretraining, masking (2 x 90 % of 16x16 tiles)',
                     demo_pretrain.get_config)):
    c = get()
    c.data.name = 'bench_pretrain'
    c.data.root = os.path.join(root, 'songs')
    c.data.data_dir = os.path.join(root, 'prepared')
    c.data.synthetic.num_songs = FLAGS.songs
    c.model.modality = 'audio'
    c.train.batch_size = 32
    if name.startswith('pretraining'):
      c.task = 'pretrain'
    if 'masking' in name:
      c.pretrain.method = 'masking'
    out[name] = c
  return out


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from data_prep import prepare
  with tempfile.TemporaryDirectory() as tmp:
    variants = configs(tmp)
    builder = prepare.prepare(next(iter(variants.values())))
    fns, songs = {}, {}
    for name, config in variants.items():
      fns[name], _, songs[name] = common.epoch_fns(config, builder)
    times = common.interleaved_medians(fns, FLAGS.repeats)
  base = next(iter(times))
  rows = [{'benchmark': f'pretraining epoch ({songs[base]} songs, 256 frames, batch 32)',
           'variant': k, 'median_s': t, 'unit_per_s': songs[k] / t,
           'ratio': (songs[k] / t) / (songs[base] / times[base]), 'baseline_variant': base}
          for k, t in times.items()]
  common.write_table(
      rows, FLAGS.out, 'pretrain',
      f'Pretraining throughput at the demo size ({jax.default_backend()}, '
      f'{os.cpu_count()} cores; songs/s; ratio: speed vs the supervised epoch)',
      unit='songs/s')


if __name__ == '__main__':
  app.run(main)

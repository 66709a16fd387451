"""Prediction speed and memory on this machine (CPU by default).

    python benchmarks/predict.py --workdir=runs/demo --out=benchmarks/out

Measures, for the model in `--workdir` (README's demo run by default):
  * the command as a user runs it, `python -m mer_jax.predict --workdir=... --audio=
    song.wav --lyrics=song.txt` on a generated 6 s song: its first call (empty cache
    folder: compiles, converts the encoder's weights) and its second (the cache
    folder the first filled, `mer_jax.caches`), against the floor of importing jax and
    flax, each a fresh process, timed in turns;
and in one process, on generated 30 s songs (WAV, 22.05 kHz) with lyrics:
  * start-up: loading the workdir (checkpoint, encoder) and the first song (compiles);
  * per-song latency after start-up (median over songs);
  * batch throughput of `predict_many` (songs/s, CSV written as it goes);
  * peak Python-heap memory (tracemalloc: numpy buffers included) of one 30 s song
    and of one 10-minute song: streaming decode keeps them close.
Prints a Markdown table and writes <out>/predict.csv and <out>/predict.md
(benchmarks/common.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('HF_HUB_OFFLINE', '1')

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import common  # noqa: E402

flags.DEFINE_string('workdir', 'runs/demo', 'A fusion training run.')
flags.DEFINE_string('out', 'benchmarks/out', 'Folder for predict.csv / predict.md.')
flags.DEFINE_integer('songs', 12, 'Generated 30 s songs.')
flags.DEFINE_integer('cli_repeats', 3, 'Rounds of the command-line start-up rows.')
FLAGS = flags.FLAGS


def _songs(folder: str, n: int) -> list:
  import soundfile as sf
  from data_prep import synthetic
  from mer_jax import predict_batch
  params = synthetic.SyntheticParams(duration_s=30.0)
  items = []
  os.makedirs(os.path.join(folder, 'audio'))
  os.makedirs(os.path.join(folder, 'lyrics'))
  for i in range(n):
    rng = np.random.default_rng([7, i])
    v, a = rng.uniform(size=2)
    audio = os.path.join(folder, 'audio', f's{i:03d}.wav')
    sf.write(audio, synthetic.synthesize(v, a, params, rng), params.sample_rate)
    lyrics = os.path.join(folder, 'lyrics', f's{i:03d}.txt')
    with open(lyrics, 'w') as f:
      f.write(synthetic._lyrics(v, a, rng))
    items.append(predict_batch.Item(f's{i:03d}', audio, lyrics))
  return items


def _cli_rows(workdir: str, folder: str, repeats: int) -> list[dict]:
  """The prediction command's first and second call on one 6 s song with lyrics, and
  the `import jax, flax` floor: medians of fresh processes timed in turns."""
  import subprocess
  import soundfile as sf
  from data_prep import synthetic
  params = synthetic.SyntheticParams(duration_s=6.0)
  rng = np.random.default_rng(11)
  audio, lyrics = os.path.join(folder, 'song.wav'), os.path.join(folder, 'song.txt')
  sf.write(audio, synthetic.synthesize(0.7, 0.3, params, rng), params.sample_rate)
  with open(lyrics, 'w') as f:
    f.write(synthetic._lyrics(0.7, 0.3, rng))
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(('JAX_COMPILATION_CACHE', 'JAX_PERSISTENT_CACHE'))}
  predict_cmd = [sys.executable, '-m', 'mer_jax.predict', f'--workdir={workdir}',
                 f'--audio={audio}', f'--lyrics={lyrics}']
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  caches = iter(range(repeats))

  def run(cmd, cache):
    done = subprocess.run(cmd, cwd=repo, env={**env, 'MER_JAX_CACHE': cache},
                          capture_output=True, text=True)
    if done.returncode:
      raise SystemExit(f'{" ".join(cmd)} failed:\n{done.stderr[-3000:]}')

  current = ['']

  def first():  # A cache folder of its own: nothing compiled or converted yet.
    current[0] = os.path.join(folder, f'cache{next(caches)}')
    run(predict_cmd, current[0])

  fns = {'import jax, flax (floor)': lambda: run(
             [sys.executable, '-c', 'import jax, flax'], ''),
         'first call (empty cache)': first,
         'second call (cache warm)': lambda: run(predict_cmd, current[0])}
  times = common.interleaved_medians(fns, repeats)
  floor = times['import jax, flax (floor)']
  return [{'benchmark': 'predict command, one 6 s song with lyrics', 'variant': k,
           'median_s': t, 'unit_per_s': 1 / t, 'ratio': t / floor,
           'baseline_variant': 'import jax, flax (floor)'} for k, t in times.items()]


def _peak_mb(fn) -> float:
  tracemalloc.start()
  fn()
  peak = tracemalloc.get_traced_memory()[1]
  tracemalloc.stop()
  return peak / 2 ** 20


def main(argv):
  del argv
  import soundfile as sf
  from mer_jax import predict, predict_batch
  if not os.path.isfile(os.path.join(FLAGS.workdir, 'config.json')):
    raise SystemExit(f'error: {FLAGS.workdir} is not a training run; train the demo '
                     'first (README\'s first command) or pass --workdir')
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    rows += _cli_rows(FLAGS.workdir, tmp, FLAGS.cli_repeats)
    items = _songs(tmp, FLAGS.songs)
    lyrics = {i.song_id: open(i.lyrics_path).read() for i in items}
    t0 = time.perf_counter()
    predictor = predict.Predictor.from_workdir(FLAGS.workdir)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    predictor.predict(items[0].audio_path, lyrics[items[0].song_id])
    t_first = time.perf_counter() - t0
    times = []
    for item in items[1:]:
      t0 = time.perf_counter()
      predictor.predict(item.audio_path, lyrics[item.song_id])
      times.append(time.perf_counter() - t0)
    latency = float(np.median(times))
    t0 = time.perf_counter()
    counts = predict_batch.predict_many(predictor, items, os.path.join(tmp, 'out.csv'))
    t_batch = time.perf_counter() - t0
    assert counts['done'] == len(items), counts
    # A 10-minute song: the 30 s songs end to end.
    long_path = os.path.join(tmp, 'long.wav')
    sf.write(long_path, np.concatenate([sf.read(i.audio_path, dtype='float32')[0]
                                        for i in (items * 20)[:20]]), 22050)
    text = lyrics[items[0].song_id]
    mem_short = _peak_mb(lambda: predictor.predict(items[0].audio_path, text))
    t0 = time.perf_counter()
    mem_long = _peak_mb(lambda: predictor.predict(long_path, text))
    t_long = time.perf_counter() - t0
  rows += [
      {'benchmark': 'predict', 'variant': 'start-up: load workdir', 'median_s': t_load,
       'unit_per_s': np.nan, 'ratio': np.nan, 'baseline_variant': ''},
      {'benchmark': 'predict', 'variant': 'start-up: first song (compiles)',
       'median_s': t_first, 'unit_per_s': 1 / t_first, 'ratio': t_first / latency,
       'baseline_variant': 'per-song latency (30 s song)'},
      {'benchmark': 'predict', 'variant': 'per-song latency (30 s song)',
       'median_s': latency, 'unit_per_s': 1 / latency, 'ratio': 1.0,
       'baseline_variant': 'per-song latency (30 s song)'},
      {'benchmark': 'predict', 'variant': f'batch of {len(items)} songs (predict_many)',
       'median_s': t_batch / len(items), 'unit_per_s': len(items) / t_batch,
       'ratio': (t_batch / len(items)) / latency,
       'baseline_variant': 'per-song latency (30 s song)'},
      {'benchmark': 'predict', 'variant': '10-minute song', 'median_s': t_long,
       'unit_per_s': 1 / t_long, 'ratio': t_long / latency,
       'baseline_variant': 'per-song latency (30 s song)'},
      {'benchmark': 'predict_memory_mb', 'variant': '30 s song peak heap (MB)',
       'median_s': np.nan, 'unit_per_s': mem_short, 'ratio': 1.0,
       'baseline_variant': '30 s song peak heap (MB)'},
      {'benchmark': 'predict_memory_mb', 'variant': '10-minute song peak heap (MB)',
       'median_s': np.nan, 'unit_per_s': mem_long, 'ratio': mem_long / mem_short,
       'baseline_variant': '30 s song peak heap (MB)'}]
  common.write_table(
      rows, FLAGS.out, 'predict',
      f'Prediction benchmark ({FLAGS.workdir}, {os.cpu_count()} CPU cores, batch of '
      f'{predictor.batch_size} windows, hop 15 s; ratio: time (or memory) as a multiple '
      f'of the named row\'s)', unit='per s (MB for memory)')


if __name__ == '__main__':
  app.run(main)

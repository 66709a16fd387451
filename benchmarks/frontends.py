"""The musicnn front-end: 30 s MP3 -> song embedding, ours vs the original recipe, and a
training epoch on cached musicnn embeddings vs a VGG epoch, side by side.

    python benchmarks/frontends.py --out=benchmarks/out

On `--songs` generated 30 s, 44.1 kHz stereo MP3s (benchmarks/features.py's):
  - original: the extractor's recipe (musicnn/extractor.py) with the shipped graph,
    model loaded once: librosa.load at 16 kHz, librosa mel -> float16 ->
    log10(10000 x + 1) (saturated where float16 overflows, as ours; the synthetic songs
    have such bins), 3 s patches, the MSD_musicnn graph in TensorFlow one patch per run
    as the extractor does (tests/musicnn_reference.py), mean of the 200-d features;
  - original, graph per song: the same, with the graph imported and the checkpoint
    restored for every song, as the shipped `extractor()` does on every call;
  - mer_jax, one song at a time: what prediction runs (`audio_features.load_audio`,
    `musicnn.song_input`, the jitted Flax port on all the song's patches at once);
  - mer_jax, songs on threads: decoding and spectrograms of the next songs on a thread
    pool while the network runs, 4 songs' patches per call.
Checks the embeddings equal the original's within MAX_DIFF (written to
<out>/frontends_checks.json). Then, on `--epoch_songs` prepared songs (audio-only), one
training epoch of the frozen-musicnn model (cached embeddings: the head only) vs the
demo's VGG (Model 4, 8/16/32/64 on 1292-frame log-mels). Medians of `--repeats`, the
variants timed in turns. Writes <out>/frontends.csv and .md (benchmarks/common.py).
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from benchmarks import common  # noqa: E402
from mer_jax import audio_features, musicnn  # noqa: E402
from mer_jax.frontends import musicnn as frontend  # noqa: E402

flags.DEFINE_string('out', 'benchmarks/out', 'Folder for frontends.csv / .md.')
flags.DEFINE_integer('songs', 8, 'Generated 30 s MP3s for the embedding benchmark.')
flags.DEFINE_integer('epoch_songs', 48, 'Generated 30 s songs for the epoch benchmark '
                     '(0: skip it).')
flags.DEFINE_integer('repeats', 3, 'Timed passes per variant.')
FLAGS = flags.FLAGS
MAX_DIFF = 1e-4  # Largest |ours - original| song-embedding difference allowed.
PARAMS = frontend.input_params(audio_features.MelParams())  # The 30 s window at 16 kHz.


def _original_embedding(graph, path: str) -> np.ndarray:
  """The extractor's recipe for one file on the shipped graph: mean of the features."""
  import librosa
  from tests.musicnn_reference import extractor_log_mel, extractor_patches
  y, _ = librosa.load(path, sr=musicnn.SAMPLE_RATE)
  _, feats = graph.run(extractor_patches(extractor_log_mel(y, saturate=True)))
  return feats.mean(axis=0)


def original_fn(per_song: bool = False):
  """The original recipe with its graph loaded once, or (`per_song`) built and restored
  for every song, as the shipped `extractor()` does on every call."""
  from tests.musicnn_reference import OriginalMusicnn
  graph = None if per_song else OriginalMusicnn(musicnn.checkpoint_prefix())

  def run(paths):
    out = []
    for p in paths:
      g = graph or OriginalMusicnn(musicnn.checkpoint_prefix())
      out.append(_original_embedding(g, p))
      if graph is None:
        g.session.close()
    return np.stack(out)
  return run


def ours_serial_fn():
  embedder = frontend.Embedder(musicnn.PATCH_FRAMES, 'mean')

  def run(paths):
    return np.concatenate([embedder.embed([frontend.window_input(
        audio_features.load_audio(p, PARAMS), PARAMS)]) for p in paths])
  return run


def ours_threaded_fn(group: int = 4):
  embedder = frontend.Embedder(musicnn.PATCH_FRAMES, 'mean')
  pool = concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1)

  def featurize(p):
    return frontend.window_input(audio_features.load_audio(p, PARAMS), PARAMS)

  def run(paths):
    inputs = pool.map(featurize, paths)  # Runs ahead of the network.
    out, batch = [], []
    for x in inputs:
      batch.append(x)
      if len(batch) == group:
        out.append(embedder.embed(batch))
        batch = []
    if batch:
      out.append(embedder.embed(batch))
    return np.concatenate(out)
  return run


def embedding_rows(paths: list[str]) -> tuple[list[dict], float]:
  fns = {'original': original_fn(), 'per_song': original_fn(per_song=True),
         'serial': ours_serial_fn(), 'threaded': ours_threaded_fn()}
  outs = {k: fn(paths[:2]) for k, fn in fns.items()}  # Warm-up: compiles, loads.
  diff = max(float(np.abs(outs[k] - outs['original']).max())
             for k in ('serial', 'threaded'))
  if not diff <= MAX_DIFF:
    raise SystemExit(f'musicnn embeddings differ from the original by {diff:.3g} '
                     f'> {MAX_DIFF}')
  times = common.interleaved_medians({k: lambda fn=fn: fn(paths) for k, fn in fns.items()},
                                     FLAGS.repeats)
  n = len(paths)
  base = 'original recipe (librosa + shipped TF graph)'
  names = {'original': base,
           'per_song': 'original, graph built and restored per song (as extractor())',
           'serial': 'mer_jax, one song at a time',
           'threaded': 'mer_jax, songs on threads, 4 songs per call'}
  bench = f'musicnn: 30 s MP3 -> song embedding ({n} songs)'
  return [{'benchmark': bench, 'variant': names[k], 'median_s': times[k],
           'unit_per_s': n / times[k], 'ratio': times['original'] / times[k],
           'baseline_variant': base} for k in fns], diff


def epoch_rows(root: str) -> list[dict]:
  from data_prep import prepare
  vgg = common.demo_config(root, 'audio', FLAGS.epoch_songs)
  mus = common.demo_config(root, 'audio', FLAGS.epoch_songs)
  mus.model.audio_frontend = 'musicnn'
  vgg_epoch, _, n = common.epoch_fns(vgg, prepare.prepare(vgg))
  mus_builder = prepare.prepare(mus)
  from mer_jax import input_pipeline
  input_pipeline.lookups(mus_builder, mus, ('audio_emb',))  # Embeds once, caches.
  mus_epoch, _, _ = common.epoch_fns(mus, mus_builder)
  times = common.interleaved_medians({'vgg': vgg_epoch, 'musicnn': mus_epoch},
                                     FLAGS.repeats)
  base = 'VGG (Model 4 8/16/32/64), audio only'
  bench = f'epoch of {n} songs, batch 16'
  return [{'benchmark': bench, 'variant': base, 'median_s': times['vgg'],
           'unit_per_s': n / times['vgg'], 'ratio': 1.0, 'baseline_variant': base},
          {'benchmark': bench, 'variant': 'frozen musicnn (cached embeddings), audio only',
           'median_s': times['musicnn'], 'unit_per_s': n / times['musicnn'],
           'ratio': times['vgg'] / times['musicnn'], 'baseline_variant': base}]


def main(argv):
  del argv
  import jax
  logging.set_verbosity(logging.WARNING)
  with tempfile.TemporaryDirectory() as tmp:
    paths = common.make_mp3s(tmp, FLAGS.songs)
    rows, diff = embedding_rows(paths)
    if FLAGS.epoch_songs:
      rows += epoch_rows(tmp)
  common.write_checks(FLAGS.out, 'frontends', {'max_embedding_diff': diff,
                                             'max_embedding_diff_bound': MAX_DIFF})
  common.write_table(
      rows, FLAGS.out, 'frontends',
      f'musicnn front-end ({jax.default_backend()}, {os.cpu_count()} cores; ratio = speed '
      'vs the baseline: > 1 is faster)', unit='songs/s')


if __name__ == '__main__':
  app.run(main)

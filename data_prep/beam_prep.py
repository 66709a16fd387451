"""The Beam path of preparation (`config.data.beam`): the local path's data, from an
Apache Beam pipeline.

`data_prep.prepare` imports this module only on that path (`pip install -r
requirements-beam.txt`). The driver reads the index and decides the skips that need no
decoding (audio file missing or empty, lyrics missing / not UTF-8 / empty, the
front-end's own) and the WordPiece ids, exactly as the local path does
(`examples.check_songs`, `tokenization.tokenize`). The pipeline then:

  songs -> decode + mel power [n_mels, <= num_frames] float32 per song (Beam workers;
           unusable audio -> its reason, never dropped)
        -> the reference split's max mel power (a CombineGlobally max)
        -> the examples (`examples.make_example`, the max as a side input) -> TFDS shards
  and every song's outcome (reason or frames) + the max power -> one JSON file, from
  which the driver writes metadata.json and prep_report.csv/.md (`examples.report_rows`).

Same inputs, same functions, so the examples, metadata and report equal the local
path's (tests/test_beam_prep.py), and the prepared dataset has the same name and hash:
either path reuses the other's output. `config.data.beam_options` is a Beam command line:
'' is Beam's FnApiRunner in this process (`pipeline_options`); '--runner=DataflowRunner
...' (or Spark, Flink) distributes the work, provided the workers can read the songs'
paths and write to `config.data.data_dir`. The runner holds the mel powers between the
max and the examples (in memory on the FnApiRunner: ~660 KB a 30 s song). Unlike the
local path, which leaves out a split whose every song is unusable audio, TFDS's Beam
writer cannot write an empty split: that stops with a one-line error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shlex
import threading
from typing import Any, Iterator

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from etils import epath
import tensorflow_datasets as tfds

from data_prep import examples as examples_lib
from data_prep import tfds_builder
from data_prep.manifest import SPLITS, Song
from mer_jax import audio_features, tokenization

# The pipeline's record of every song it decoded and of the max power; the driver reads
# it into the report and metadata, then removes it (before TFDS publishes the folder).
OUTCOMES_FILE = 'beam_outcomes.json'
COUNTERS = 'mer_prep'  # Namespace of the pipeline's Beam counters.


def pipeline_options(text: str) -> PipelineOptions:
  """Beam pipeline options from a command line ('--runner=... --project=...'). Without
  a --runner: Beam's FnApiRunner in this process (one thread: on 2 cores its
  multi_threading mode with 2 workers took 1.8x as long, the workers' Python contending
  for the GIL). Not Beam's default DirectRunner: that first downloads its Prism runner
  from GitHub (offline it fails, leaves an empty /tmp/beam-temp* folder, then runs the
  FnApiRunner anyway)."""
  options = PipelineOptions(shlex.split(text))
  standard = options.view_as(StandardOptions)  # A view: setting it sets `options`.
  if standard.runner is None:
    standard.runner = 'FnApiRunner'
  return options


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit = None


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
  """BLAS on one thread while any worker thread of this process decodes a song (the
  local path's setting, `audio_features.iter_song_mel_powers`): the cores are busy with
  songs. Counted, so concurrent songs neither undo each other's limit nor leave it."""
  global _blas_users, _blas_limit
  import threadpoolctl
  with _blas_lock:
    if _blas_users == 0:
      _blas_limit = threadpoolctl.threadpool_limits(1, user_api='blas')
    _blas_users += 1
  try:
    yield
  finally:
    with _blas_lock:
      _blas_users -= 1
      if _blas_users == 0:
        _blas_limit.restore_original_limits()


class _MelPower(beam.DoFn):
  """(song, token ids, mask) -> the same with the song's mel power [n_mels, <=
  num_frames] float32; and on the 'outcome' output (song id, skip reason or None,
  frames) for every song."""

  def __init__(self, params: audio_features.MelParams):
    self._params = params
    self._decoded = beam.metrics.Metrics.counter(COUNTERS, 'songs_decoded')
    self._unusable = beam.metrics.Metrics.counter(COUNTERS, 'songs_unusable')

  def process(self, item: tuple[Song, Any, Any]):
    song = item[0]
    with _one_blas_thread():
      power, err = audio_features.power_or_error(song.audio_path, self._params)
    if err:
      self._unusable.inc()
      yield beam.pvalue.TaggedOutput('outcome', (song.song_id, err, 0))
      return
    self._decoded.inc()
    yield beam.pvalue.TaggedOutput('outcome', (song.song_id, None, power.shape[1]))
    yield (*item, power)


class _ReferencePower(beam.CombineFn):
  """The largest of the reference songs' peak powers; for none (no readable song in
  the reference split), the local path's error, before any example is made."""

  def __init__(self, ref_split: str):
    self._ref_split = ref_split

  def create_accumulator(self) -> float | None:
    return None

  def add_input(self, acc: float | None, x: float) -> float:
    return x if acc is None else max(acc, x)

  def merge_accumulators(self, accs) -> float | None:
    return max((a for a in accs if a is not None), default=None)

  def extract_output(self, acc: float | None) -> float:
    if acc is None:
      raise examples_lib.no_reference_error(self._ref_split)
    return acc


def _example(item: tuple, max_power: float, params: audio_features.MelParams,
             extra: Any) -> tuple[str, dict]:
  """(song id, example) of a decoded song."""
  song, ids, mask, power = item
  return song.song_id, examples_lib.make_example(song, power, max_power, ids, mask,
                                                params, extra)


def _write_outcomes(outcomes: list, max_power: float, path: str) -> None:
  epath.Path(path).write_text(json.dumps({'max_power': max_power, 'songs': outcomes}))


class _Plan:
  """One preparation: the driver's part before the pipeline (`build`) and after it
  (`finish`)."""

  def __init__(self, inputs: tuple, extra: Any):
    """`inputs`: `prepare.compute_examples`'s first eight arguments (songs, mel params,
    encoder, max_length, num_workers, ref_split, require_lyrics, skipped rows);
    `extra`: the front-end's `PreparedInputs` or None."""
    (self.songs, self.params, self.encoder, self.max_length, _, self.ref_split,
     self.require_lyrics, self.skipped) = inputs
    self.extra = extra

  def build(self, pipeline: beam.Pipeline, folder: str
            ) -> tuple[dict[str, beam.PCollection], Any]:
    """(PCollection of (song id, example) per split, `finish`)."""
    self.report, texts = examples_lib.check_songs(self.songs, self.require_lyrics,
                                                 self.extra)
    todo = [s for s in self.songs if self.report[s.song_id] is None]
    if not any(examples_lib.in_reference(s, self.ref_split) for s in todo):
      raise examples_lib.no_reference_error(self.ref_split)
    # In the driver, as the local path (which tokenizes only the songs it writes: a
    # row's ids depend on its text alone).
    ids, mask = tokenization.tokenize([texts[s.song_id] for s in todo],
                                      tokenization.load_tokenizer(self.encoder),
                                      self.max_length)
    ref_split, params = self.ref_split, self.params
    decoded = (pipeline
               | 'Songs' >> beam.Create(list(zip(todo, ids, mask)))
               | 'MelPower' >> beam.ParDo(_MelPower(params)).with_outputs(
                   'outcome', main='ok'))
    max_power = beam.pvalue.AsSingleton(
        decoded.ok
        | 'Reference' >> beam.Filter(lambda x: examples_lib.in_reference(x[0], ref_split))
        | 'PeakPower' >> beam.Map(lambda x: float(x[3].max()))
        | 'MaxPower' >> beam.CombineGlobally(_ReferencePower(ref_split)))
    self.outcomes_path = os.path.join(folder, OUTCOMES_FILE)
    _ = (decoded.outcome
         | 'Outcomes' >> beam.combiners.ToList()
         | 'WriteOutcomes' >> beam.Map(_write_outcomes, max_power=max_power,
                                       path=self.outcomes_path))
    # Only what makes an example travels to the workers: a front-end's `skips` may
    # hold every song's inputs (the embeddings), its `side_files` run here.
    extra = (None if self.extra is None or self.extra.example is None else
             dataclasses.replace(self.extra, skips=None, files=None, side_files=None))
    examples = decoded.ok | 'Examples' >> beam.Map(
        _example, max_power=max_power, params=params, extra=extra)
    split_of = {s.song_id: SPLITS.index(s.split) for s in todo}
    parts = examples | 'BySplit' >> beam.Partition(_split_index, len(SPLITS),
                                                   split_of=split_of)
    return ({split: parts[i] for i, split in enumerate(SPLITS)
             if i in split_of.values()}, self.finish)

  def finish(self, pipeline_result) -> tuple[dict, list[dict]]:
    """(metadata, report rows) from the songs' outcomes the pipeline wrote."""
    path = epath.Path(self.outcomes_path)
    outcomes = json.loads(path.read_text())
    path.unlink()
    counters = {r.key.metric.name: r.committed for r in pipeline_result.metrics().query(
        beam.metrics.MetricsFilter().with_namespace(COUNTERS))['counters']}
    logging.info('Beam pipeline %s: %s', pipeline_result.state, counters)
    frames = {}
    for song_id, reason, n in outcomes['songs']:
      if reason:
        self.report[song_id] = reason
      else:
        frames[song_id] = n
    rows = examples_lib.report_rows(self.songs, self.report, self.skipped, len(frames),
                                   frames)
    return examples_lib.prep_metadata(
        outcomes['max_power'], self.params, self.encoder, self.max_length,
        self.ref_split, len(frames), len(rows) - len(frames)), rows


def _split_index(kv: tuple[str, dict], n: int, split_of: dict[str, int]) -> int:
  return split_of[kv[0]]


def prepare(builder_args: dict, inputs: tuple, extra: Any, options: str) -> None:
  """Writes the prepared dataset that `MerDataset(**builder_args)` reads with a Beam
  pipeline run with `options` (`pipeline_options`); `inputs`, `extra`: as `_Plan`'s."""
  builder = tfds_builder.MerBeamDataset(compute=_Plan(inputs, extra).build,
                                        **builder_args)
  try:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        beam_options=pipeline_options(options)))
  except Exception as e:  # pylint: disable=broad-except
    user_error = _user_failure(str(e))
    if user_error is None:
      raise
    raise user_error from None


def _user_failure(text: str) -> ValueError | None:
  """The one-line error of a pipeline that failed on the user's data (a runner reports
  a worker's exception as its own, the worker's traceback in its message), or None."""
  ref = re.search(r"no readable song in the '[^']*' split: cannot compute the dB "
                  r'reference power', text)
  if ref:
    return ValueError(ref.group(0))
  empty = re.search(r'generated examples is 0 for split (\w+)', text)
  if empty:  # TFDS's BeamWriter refuses an empty split; the local path leaves it out.
    return ValueError(
        f'no song of the {empty.group(1)!r} split is usable audio: the Beam path cannot '
        'write an empty split; config.data.beam = False prepares the data without it '
        'and lists why in prep_report.md')
  return None

"""Prepare a dataset once: songs -> features -> TFRecord shards (via TFDS).

    python -m data_prep.prepare --config=configs/demo.py

`launch.py` calls the same `prepare(config)` when the prepared data is missing.
The songs come from the reader `config.data.source` names: one plug-in module per
source (`data_prep.synthetic`, `manifest`, `merge`, `pmemo`, `deam`, `emomusic`), each with
`read_songs(config) -> (songs, skipped rows, index files)` and, for a release or
manifest the user downloads, `locate(config)` (raises when it is not there, reads
nothing else); `read_songs` and `locate` here look it up by name, so this module knows
no reader's arguments.
Audio decoding and log-mel extraction run on all CPU cores (`config.data.num_workers`).
The dB reference is the maximum over a whole split, so every song's mel power is kept
until it is known: in a memmap in a `spill.*` folder beside the output (removed at the
end), so memory stays a few songs' worth for any dataset size.
With `config.data.beam` an Apache Beam pipeline writes the same data
(`data_prep.beam_prep`); what both paths share is `data_prep.examples`.
Every row the reader read ends up in `prep_report.csv` next to the prepared data, either
written or skipped with a reason (missing/unreadable audio, missing/non-UTF-8/empty
lyrics); rows in = rows written + rows skipped is checked.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Callable, Iterator

import ml_collections
import numpy as np

from data_prep import examples as examples_lib
from data_prep import locking
from data_prep import manifest as manifest_lib
from mer_jax import audio_features
from mer_jax import tokenization

# Bump when the example format or feature computation changes (forces a rebuild).
FORMAT_VERSION = 4  # 4: prep_report.csv has each song's frames.


def mel_params(config: ml_collections.ConfigDict) -> audio_features.MelParams:
  return audio_features.MelParams(**config.audio.to_dict())


# The readers: `config.data.source` names the module `data_prep.<source>`, whose
# `read_songs(config)` returns (songs, skipped rows, index files). Listed, not
# discovered, so a typo names the choices and no other data_prep module (this one
# included) is ever called as a reader.
SOURCES = ('synthetic', 'manifest', 'merge', 'pmemo', 'deam', 'emomusic')


def _reader(config: ml_collections.ConfigDict):
  source = config.data.source
  if source not in SOURCES:
    raise ValueError(f'config.data.source must be one of {SOURCES}, got {source!r}')
  return importlib.import_module(f'data_prep.{source}')


def locate(config: ml_collections.ConfigDict) -> None:
  """Raises the reader's one-line error when the configured release (or manifest) is
  not where the config says; reads no song and writes nothing. Cheap (no JAX, no
  TensorFlow): `mer_jax.jobs.run` calls it first, so a wrong `config.data.root` is
  reported in a second, not after the ~10 s of importing what training needs. A reader
  without `locate(config)` (the synthetic one, which writes its songs) is checked by
  `read_songs` as before."""
  check = getattr(_reader(config), 'locate', None)
  if check is not None:
    check(config)


def read_songs(config: ml_collections.ConfigDict
               ) -> tuple[list[manifest_lib.Song], list[dict], list[str]]:
  """(songs, rows skipped while reading, the index files read) of the configured source.

  The index files (manifest, label CSVs, stored split, split file) are hashed, in this
  order, to decide whether the prepared data is current. `config.data.split_file` (a
  published split, `data_prep.split_files`) replaces the source's split; songs in none
  of its lists are skipped rows ('unused').
  """
  songs, skipped, index_files = _reader(config).read_songs(config)
  if config.data.get('split_file', ''):
    from data_prep import split_files
    songs, unused, files = split_files.apply(songs, config.data.split_file)
    skipped, index_files = list(skipped) + unused, list(index_files) + files
  return songs, skipped, index_files


def _inputs_digest(index_files: list[str], songs: list[manifest_lib.Song],
                   extra_file: Callable[[manifest_lib.Song], str] | None = None) -> str:
  """Hash of the index files (manifest, label CSVs) and of the size/mtime of every
  file the songs name (with `extra_file(song)`, the front-end's input file too)."""
  h = hashlib.sha256()
  for path in index_files:
    with open(path, 'rb') as f:
      h.update(f.read())
  for s in songs:
    for p in (s.audio_path, s.lyrics_path) + ((extra_file(s),) if extra_file else ()):
      try:
        st = os.stat(p) if p else None
      except OSError:
        st = None
      h.update((f'{p}:{st.st_size}:{st.st_mtime_ns}' if st else f'{p}:-').encode())
  return h.hexdigest()


class _PowerStore:
  """Mel powers of the songs being prepared, [songs, n_mels, num_frames] float32 with
  each song's frame count: a .npy memmap in `folder` (the page cache, not the process,
  holds them: ~660 KB a 30 s song, 2.3 GB for MERGE Audio), or in memory without one."""

  def __init__(self, n: int, params: audio_features.MelParams, folder: str | None):
    shape = (n, params.n_mels, params.num_frames)
    self.powers = (np.lib.format.open_memmap(os.path.join(folder, 'mel_powers.npy'),
                                             mode='w+', dtype=np.float32, shape=shape)
                   if folder else np.zeros(shape, np.float32))
    self.frames = np.zeros(n, np.int64)

  def put(self, i: int, power: np.ndarray) -> None:
    self.powers[i, :, :power.shape[1]] = power
    self.frames[i] = power.shape[1]

  def get(self, i: int) -> np.ndarray:
    return self.powers[i, :, :self.frames[i]]


class _Examples:
  """One split's examples, each made when iterated (the log-mel from the store), so a
  split is never in memory at once; iterable any number of times."""

  def __init__(self, songs: list, make: Callable[[Any], dict]):
    self.songs, self._make = songs, make

  def __len__(self) -> int:
    return len(self.songs)

  def __iter__(self) -> Iterator[dict]:
    return map(self._make, self.songs)


def compute_examples(songs: list[manifest_lib.Song], params: audio_features.MelParams,
                     encoder: str, max_length: int, num_workers: int,
                     ref_split: str = 'train', require_lyrics: bool = True,
                     skipped: list[dict] = (), spill_dir: str | None = None,
                     extra: Any = None):
  """Features for every usable song; `skipped` are rows the reader already rejected.
  `extra` (a `mer_jax.frontends.PreparedInputs`) adds the audio front-end's inputs:
  its skips are decided first, its features join each example.

  The mel powers go to a memmap in `spill_dir` as they are computed (in memory without
  one): the dB reference is the maximum over a whole split, so every power is kept
  until it is known, and the examples are made from the store when iterated.

  Returns:
    (examples per split: iterables of example dicts, valid while `spill_dir` exists,
    metadata, report rows). Metadata holds `max_power` (the mel power that is 0 dB: the
    maximum over `ref_split`) and the feature parameters.
  """
  report, texts = examples_lib.check_songs(songs, require_lyrics, extra)
  todo = [s for s in songs if report[s.song_id] is None]
  store = _PowerStore(len(todo), params, spill_dir)
  ref = []
  results = audio_features.iter_song_mel_powers([s.audio_path for s in todo], params,
                                               num_workers)
  for i, (s, (power, err)) in enumerate(zip(todo, results)):
    if err:
      report[s.song_id] = err
      continue
    store.put(i, power)
    if examples_lib.in_reference(s, ref_split):
      ref.append(float(power.max()))
  if not ref:
    raise examples_lib.no_reference_error(ref_split)
  max_power = max(ref)
  # (store index, song) of every song written, in order: the k-th has token ids[k].
  kept = [(i, s) for i, s in enumerate(todo) if report[s.song_id] is None]
  tokenizer = tokenization.load_tokenizer(encoder)
  ids, mask = tokenization.tokenize([texts[s.song_id] for _, s in kept], tokenizer,
                                    max_length)

  def make(entry: tuple[int, int, manifest_lib.Song]) -> dict:
    k, i, s = entry
    return examples_lib.make_example(s, store.get(i), max_power, ids[k], mask[k], params,
                                     extra)

  examples = {split: _Examples([(k, i, s) for k, (i, s) in enumerate(kept)
                                if s.split == split], make)
              for split in manifest_lib.SPLITS}
  n_written = sum(len(v) for v in examples.values())
  rows = examples_lib.report_rows(songs, report, skipped, n_written,
                                 {s.song_id: int(store.frames[i]) for i, s in kept})
  metadata = examples_lib.prep_metadata(max_power, params, encoder, max_length,
                                        ref_split, n_written, len(rows) - n_written)
  return examples, metadata, rows


BEAM_MISSING = 'config.data.beam needs Apache Beam: pip install -r requirements-beam.txt'


def _beam_module():
  """data_prep.beam_prep, imported only on the Beam path; without Apache Beam installed,
  a ValueError (one line from logs.user_errors) saying how to install it."""
  try:
    from data_prep import beam_prep
  except ImportError as e:
    if not (e.name or '').startswith('apache_beam'):
      raise
    raise ValueError(BEAM_MISSING) from None
  return beam_prep


def prepare(config: ml_collections.ConfigDict, min_train: int = 0):
  """Prepares the configured dataset if needed; returns its (prepared) TFDS builder.

  `min_train` (training: the batch size) refuses, before any audio is read, an index
  that lists fewer training songs.
  """
  from data_prep.tfds_builder import MerDataset
  from mer_jax import frontends
  songs, skipped, index_files = read_songs(config)
  n_train = sum(s.split == 'train' for s in songs)
  if n_train < min_train:
    raise ValueError(f'{index_files[0]}: lists {n_train} training songs, fewer than the '
                     f'batch size (config.train.batch_size = {min_train})')
  params = mel_params(config)
  frontend = frontends.get(config)
  extra = frontend.prepared(params) if frontend.prepared is not None else None
  tok_dir = tokenization.encoder_dir(config.text.encoder)
  tok_files = {}
  for f in ('vocab.txt', 'tokenizer_config.json'):
    p = os.path.join(tok_dir, f)
    if os.path.isfile(p):
      with open(p, 'rb') as fh:
        tok_files[f] = hashlib.sha256(fh.read()).hexdigest()
  key = {'format': FORMAT_VERSION,
         'inputs': _inputs_digest(index_files, songs, extra and extra.files),
         'mel': params.to_dict(), 'tokenizer': tok_files,
         'max_length': config.text.max_length, 'ref_split': config.data.ref_power_split,
         'lyrics': config.data.lyrics}
  if extra is not None:  # Absent for the VGG's data: its hash is unchanged.
    key['audio_inputs'] = extra.key
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
  # The Beam path writes the same data (the same name and hash) as the local one.
  builder_args = dict(
      config_name=f'{config.data.name}_{digest}',
      shapes={'n_mels': params.n_mels, 'num_frames': params.num_frames,
              'max_length': config.text.max_length},
      extra_features=extra.features if extra is not None else {},
      side_files=extra.side_files if extra is not None else None,
      data_dir=os.path.expanduser(config.data.data_dir))
  inputs = (songs, params, config.text.encoder, config.text.max_length,
            config.data.num_workers, config.data.ref_power_split, config.data.lyrics,
            skipped)

  def make_builder() -> MerDataset:  # Reads the stored info when already prepared.
    return MerDataset(compute=lambda: compute_examples(
        *inputs, spill_dir=spill_dir, extra=extra),  # spill_dir: while TFDS writes.
        **builder_args)

  builder = make_builder()
  parent = os.path.dirname(builder.data_dir)
  if not builder.is_prepared():
    # Only writing needs Beam: its data is read, and reused, without.
    beam = _beam_module() if config.data.get('beam', False) else None
    os.makedirs(parent, exist_ok=True)
    # One preparation per variant at a time (e.g. two runs of a sweep started together):
    # the second waits, then reuses what the first wrote instead of deleting its folders.
    with locking.exclusive(os.path.join(parent, 'prepare.lock'), 'preparing this dataset'):
      if builder.is_prepared():  # Written by whoever held the lock before us.
        logging.info('reusing prepared data in %s', builder.data_dir)
        builder = make_builder()
      else:
        # Temporary folders of an earlier killed preparation never load; remove them.
        for name in os.listdir(parent):
          if name.startswith(('incomplete.', 'spill.')):
            logging.warning('removing %s left by an interrupted preparation', name)
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
        logging.info('preparing %s from %s into %s', config.data.name, index_files[0],
                     builder.data_dir)
        with tempfile.TemporaryDirectory(prefix='spill.', dir=parent) as spill_dir:
          if beam is None:
            builder.download_and_prepare()
          else:
            beam.prepare(builder_args, inputs, extra, config.data.get('beam_options', ''))
            builder = make_builder()
  else:
    logging.info('reusing prepared data in %s', builder.data_dir)
  meta = builder.info.metadata
  print(f'prepared data: {builder.data_dir} ({meta["num_written"]} songs written, '
        f'{meta["num_skipped"]} skipped; report: '
        f'{os.path.join(builder.data_dir, "prep_report.md")})', flush=True)
  return builder


def main(argv):
  del argv
  from absl import flags
  from mer_jax import logs
  logs.quiet_library_logs()
  with logs.user_errors():
    prepare(flags.FLAGS.config)


if __name__ == '__main__':
  # transformers (the tokenizer) imports PyTorch and TensorFlow's Keras side when they
  # are installed; neither is used here: 2-2.5 s of every start with torch installed.
  os.environ.setdefault('USE_TORCH', '0')
  os.environ.setdefault('USE_TF', '0')
  from absl import app, flags
  from ml_collections import config_flags
  from mer_jax import logs
  config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
  flags.mark_flags_as_required(['config'])
  app.run(main, flags_parser=logs.parse_flags)

"""Prepared TFRecords: write -> read equals the input; reuse, rebuild, skip report."""

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from data_prep import manifest, prepare
from tests.conftest import tiny_config


def _read_all(builder, split):
  return {ex['song_id'].decode(): ex
          for ex in builder.as_dataset(split=split).as_numpy_iterator()}


def test_write_read_roundtrip(tiny_prepared):
  config, builder = tiny_prepared
  songs = prepare.read_songs(config)[0]
  examples, meta, rows = prepare.compute_examples(
      songs, prepare.mel_params(config), config.text.encoder, config.text.max_length, 1)
  assert builder.info.metadata['max_power'] == pytest.approx(meta['max_power'], rel=1e-12)
  assert builder.info.metadata['mel_params']['num_frames'] == 128
  total = 0
  for split, exs in examples.items():
    got = _read_all(builder, split)
    assert sorted(got) == sorted(e['song_id'] for e in exs)
    for e in exs:
      g = got[e['song_id']]
      assert g['mel'].shape == (128, 128) and g['mel'].dtype == np.float32
      np.testing.assert_array_equal(g['mel'], e['mel'])
      np.testing.assert_array_equal(g['token_ids'], e['token_ids'])
      np.testing.assert_array_equal(g['attention_mask'], e['attention_mask'])
      assert g['valence'] == e['valence'] and g['arousal'] == e['arousal']
      assert g['quadrant'] == e['quadrant'] and g['congruent'] == e['congruent']
    total += len(exs)
  assert total == len(songs) == len(rows)
  # The dB reference is the training split's maximum: its loudest bin is 0 dB.
  train_max = max(ex['mel'].max() for ex in _read_all(builder, 'train').values())
  assert train_max == pytest.approx(0.0, abs=1e-5)


def test_reuse_and_rebuild_on_feature_change(tiny_prepared, tiny_root):
  config, builder = tiny_prepared
  info = os.path.join(builder.data_dir, 'dataset_info.json')
  mtime = os.stat(info).st_mtime_ns
  again = prepare.prepare(tiny_config(tiny_root))
  assert again.data_dir == builder.data_dir and os.stat(info).st_mtime_ns == mtime
  changed = tiny_config(tiny_root)
  changed.audio.num_frames = 96
  other = prepare.prepare(changed)
  assert other.data_dir != builder.data_dir
  assert other.info.features['mel'].shape == (128, 96)


def test_bad_rows_are_skipped_and_reported(tmp_path, tiny_prepared):
  config, _ = tiny_prepared
  good = prepare.read_songs(config)[0][:6]
  (tmp_path / 'bad.wav').write_bytes(b'RIFF not really a wav')
  (tmp_path / 'latin1.txt').write_bytes('caf\xe9 ol\xe9'.encode('latin-1'))
  (tmp_path / 'empty.txt').write_text('  \n')
  sf.write(tmp_path / 'ok.wav', np.zeros(22050, np.float32) + 0.1, 22050)
  (tmp_path / 'zero.mp3').write_bytes(b'')
  sf.write(tmp_path / 'short.wav', np.full(11025, 0.1, np.float32), 22050)  # 0.5 s
  sf.write(tmp_path / 'silent.flac', np.zeros(44100, np.float32), 22050)
  y = np.random.default_rng().uniform(-0.5, 0.5, 44100).astype(np.float32)
  y[1000] = np.inf  # One bad sample of a float WAV.
  sf.write(tmp_path / 'inf.wav', y, 22050, subtype='FLOAT')
  sf.write(tmp_path / 'nan.wav', np.full(44100, np.nan, np.float32), 22050, subtype='FLOAT')
  (tmp_path / 'folder.mp3').mkdir()
  (tmp_path / 'noise.mp3').write_bytes(np.random.default_rng().bytes(4000))
  lines = ['song_id,audio_path,lyrics_path,valence,arousal,split']
  # The inf WAV is the first training row: it must not reach the reference max power.
  lyr = good[1].lyrics_path
  lines += [f'inf,inf.wav,{lyr},0.5,0.5,train', f'nan,nan.wav,{lyr},0.5,0.5,train',
            f'folder,folder.mp3,{lyr},0.5,0.5,train', f'noise,noise.mp3,{lyr},0.5,0.5,train']
  lines += [f'{s.song_id},{s.audio_path},{s.lyrics_path},{s.valence},{s.arousal},{s.split}'
            for s in good]
  lines += ['gone,missing.wav,latin1.txt,0.5,0.5,train',
            'broken,bad.wav,empty.txt,0.5,0.5,train',
            'unreadable,bad.wav,' + good[0].lyrics_path + ',0.5,0.5,test',
            'latin,ok.wav,latin1.txt,0.5,0.5,train',
            'empty,ok.wav,empty.txt,0.5,0.5,validation',
            'nolyrics,ok.wav,,0.5,0.5,train',
            'zerobyte,zero.mp3,' + good[1].lyrics_path + ',0.5,0.5,train',
            'short,short.wav,' + good[1].lyrics_path + ',0.5,0.5,train',
            'silent,silent.flac,' + good[1].lyrics_path + ',0.5,0.5,test']
  (tmp_path / 'manifest.csv').write_text('\n'.join(lines) + '\n')
  cfg = tiny_config(str(tmp_path))
  cfg.data.source, cfg.data.name = 'manifest', 'bad'
  cfg.data.manifest = str(tmp_path / 'manifest.csv')
  builder = prepare.prepare(cfg)
  report = pd.read_csv(os.path.join(builder.data_dir, 'prep_report.csv'),
                       keep_default_na=False).set_index('item_id')
  assert len(report) == 19
  assert (report.status == 'written').sum() == 6
  reasons = report.reason.to_dict()
  assert reasons['gone'].startswith('audio file missing') and 'missing.wav' in reasons['gone']
  assert reasons['broken'].startswith('lyrics empty')
  assert reasons['unreadable'].startswith('audio unreadable') and 'bad.wav' in reasons['unreadable']
  assert reasons['latin'].startswith('lyrics not UTF-8') and 'latin1.txt' in reasons['latin']
  assert reasons['empty'].startswith('lyrics empty')
  assert reasons['nolyrics'].startswith('no lyrics')
  assert reasons['zerobyte'].startswith('audio unreadable') and 'zero.mp3' in reasons['zerobyte']
  assert reasons['zerobyte'].endswith('zero.mp3: empty file (0 bytes)')
  assert reasons['inf'].startswith('non-finite samples: ')
  assert reasons['inf'].endswith('inf.wav: NaN or infinite samples (the first at 0.045 s)')
  assert reasons['nan'].startswith('non-finite samples: ')
  assert reasons['folder'].endswith('folder.mp3: is a directory, not an audio file')
  assert reasons['noise'].endswith('noise.mp3: not an audio file (unrecognised format)')
  assert reasons['unreadable'].endswith('bad.wav: not an audio file (unrecognised format)')
  assert np.isfinite(builder.info.metadata['max_power'])
  for split in builder.info.splits:  # Nothing written holds a NaN.
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      assert np.isfinite(ex['mel']).all()
  assert reasons['short'].startswith('audio too short')
  assert 'audio shorter than 1 s (0.50 s)' in reasons['short']
  assert reasons['silent'].startswith('audio silent') and 'silent.flac' in reasons['silent']
  written = sum(builder.info.splits[s].num_examples for s in builder.info.splits)
  assert written == 6
  md = open(os.path.join(builder.data_dir, 'prep_report.md')).read()
  assert '19 input rows: 6 written, 13 skipped' in md
  assert '| audio unreadable | 4 |' in md and '| audio too short | 1 |' in md
  assert '| non-finite samples | 2 |' in md


def test_missing_column_stops_with_the_file_named(tmp_path, tiny_root):
  (tmp_path / 'manifest.csv').write_text('song_id,audio_path,valence,arousal,split\n')
  cfg = tiny_config(tiny_root)
  cfg.data.source = 'manifest'
  cfg.data.manifest = str(tmp_path / 'manifest.csv')
  with pytest.raises(manifest.ManifestError, match='manifest.csv: missing column'):
    prepare.prepare(cfg)


def test_whole_dataset_reference_option(tiny_prepared):
  config, _ = tiny_prepared
  songs = prepare.read_songs(config)[0]
  params = prepare.mel_params(config)
  ex_all, meta_all, _ = prepare.compute_examples(songs, params, 'minilm', 16, 1,
                                                  ref_split='all')
  _, meta_train, _ = prepare.compute_examples(songs, params, 'minilm', 16, 1)
  assert meta_all['max_power'] >= meta_train['max_power']
  # With the whole-dataset reference the loudest bin of any split is 0 dB.
  peak = max(e['mel'].max() for exs in ex_all.values() for e in exs)
  assert peak == pytest.approx(0.0, abs=1e-5)


def test_mel_powers_spill_to_disk_with_the_same_examples(tmp_path):
  """With a spill folder the songs' mel powers live in a memmap, not in the process:
  once computed, the 12 songs' examples hold no song's features in memory, and making
  them one at a time (as TFDS writes) holds a few songs' worth, not 12; the examples
  equal those computed in memory."""
  import tracemalloc

  from data_prep import synthetic
  path = synthetic.generate(str(tmp_path / 'songs'), synthetic.SyntheticParams(
      num_songs=12, duration_s=30.0))
  songs = manifest.read_manifest(path)
  params = prepare.mel_params(tiny_config(str(tmp_path)))
  params = dataclasses.replace(params, num_frames=1292)
  song_bytes = params.n_mels * params.num_frames * 4
  prepare.compute_examples(songs[:1], params, 'minilm', 16, 1)  # Imports, caches.

  def run(spill_dir):
    tracemalloc.start()
    examples, meta, _ = prepare.compute_examples(songs, params, 'minilm', 16, 2,
                                                 spill_dir=spill_dir)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    sums = {}
    for exs in examples.values():  # What TFDS does: one example at a time.
      for e in exs:
        sums[e['song_id']] = float(e['mel'].sum(dtype=np.float64))
    making = tracemalloc.get_traced_memory()[1] - held
    tracemalloc.stop()
    return sums, meta, held, making, examples

  spill = tmp_path / 'spill'
  spill.mkdir()
  on_disk, meta, held_disk, making_disk, examples = run(str(spill))
  in_memory, meta_mem, held_mem, _, _ = run(None)
  assert os.path.getsize(spill / 'mel_powers.npy') >= 12 * song_bytes
  assert held_mem >= 12 * song_bytes  # The measure sees the songs held in memory...
  assert held_disk < song_bytes, (held_disk, song_bytes)  # ...and the spill holds none.
  # The example being made, its dB temporary and the one before it: not 12 songs.
  assert making_disk < 4 * song_bytes, (making_disk, song_bytes)
  assert meta['max_power'] == meta_mem['max_power']
  assert on_disk == in_memory and len(on_disk) == 12
  # Examples are made again on each pass, equal every time.
  first = {e['song_id']: e['mel'] for exs in examples.values() for e in exs}
  for exs in examples.values():
    for e in exs:
      np.testing.assert_array_equal(e['mel'], first[e['song_id']])


@pytest.mark.parametrize('other_finishes', [True, False])
def test_second_preparation_waits_for_the_first(tmp_path, other_finishes):
  """Two runs preparing the same variant: the second waits on the first's lock, then
  reuses its dataset, or (first killed) rebuilds and removes its leftovers; it never
  deletes the folders of a preparation in progress."""
  import fcntl
  import shutil
  import threading
  config = tiny_config(str(tmp_path))
  first = prepare.prepare(config)
  want = _read_all(first, 'test')
  parent = os.path.dirname(first.data_dir)
  shutil.move(first.data_dir, str(tmp_path / 'done'))  # Not prepared (yet).
  in_progress = os.path.join(parent, 'incomplete.other')
  os.makedirs(in_progress)
  result = {}
  with open(os.path.join(parent, 'prepare.lock'), 'a') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # The first preparation holds the lock.
    second = threading.Thread(target=lambda: result.update(b=prepare.prepare(config)))
    second.start()
    second.join(1.0)
    assert second.is_alive() and os.path.isdir(in_progress)
    if other_finishes:
      shutil.rmtree(in_progress)
      shutil.move(str(tmp_path / 'done'), first.data_dir)
      shard = next(os.path.join(first.data_dir, f) for f in os.listdir(first.data_dir)
                   if '.tfrecord' in f)
      inode = os.stat(shard).st_ino
  second.join(120)
  assert not second.is_alive()
  builder = result['b']
  assert builder.data_dir == first.data_dir
  assert builder.info.metadata['num_written'] == first.info.metadata['num_written']
  if other_finishes:
    assert os.stat(shard).st_ino == inode  # Reused, not written again.
  assert not os.path.exists(in_progress)
  got = _read_all(builder, 'test')
  assert want and got.keys() == want.keys()
  for k in want:
    np.testing.assert_array_equal(got[k]['mel'], want[k]['mel'])


def test_an_unprepared_builder_leaves_no_temporary_folder(tmp_path, own_tempdir):
  """TFDS looks up an unprepared dataset's info in its GCS bucket through an empty
  temporary folder that it never removes (GCS off, as by default, included); ours looks
  nothing up, so a preparation leaves nothing in the temporary folder."""
  from data_prep.tfds_builder import MerDataset
  builder = MerDataset(config_name='empty_0', data_dir=str(tmp_path / 'prepared'),
                       shapes={'n_mels': 4, 'num_frames': 3, 'max_length': 2})
  assert not builder.is_prepared()
  assert os.listdir(own_tempdir) == []

"""The Beam path of preparation (config.data.beam, Beam's FnApiRunner) writes the local
path's prepared data: the same examples, metadata and prep report, in the same folder
name."""

import os
import sys

import apache_beam  # noqa: F401  CI installs requirements-beam.txt: never skipped.
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import tensorflow as tf

import data_prep
from data_prep import beam_prep, prepare, synthetic
from mer_jax import logs
from tests.conftest import tiny_config

# Songs the driver skips (empty audio file, no lyrics) and songs only a Beam worker
# finds unusable when decoding (not audio, shorter than 1 s).
BROKEN = {'empty': 'audio unreadable', 'nolyrics': 'no lyrics',
          'garbage': 'audio unreadable', 'short': 'audio too short'}


def _release(root: str):
  """A config of 12 generated 3 s songs + the BROKEN rows (a manifest release)."""
  config = tiny_config(root)
  path = synthetic.generate(os.path.join(root, 'songs'), synthetic.SyntheticParams(
      num_songs=12, duration_s=3.0, seed=3))
  folder = os.path.dirname(path)
  with open(os.path.join(folder, 'empty.wav'), 'wb'):
    pass
  with open(os.path.join(folder, 'garbage.wav'), 'wb') as f:
    f.write(b'RIFF not really a wav')
  sf.write(os.path.join(folder, 'short.wav'), np.full(11025, 0.1, np.float32), 22050)
  lyrics = 'lyrics/song0000.txt'
  with open(path, 'a') as f:
    f.write(f'empty,empty.wav,{lyrics},0.2,0.7,train,1,0.1,0.1\n'
            'nolyrics,audio/song0001.wav,,0.6,0.6,validation,1,0.1,0.1\n'
            f'garbage,garbage.wav,{lyrics},0.8,0.3,train,0,0.1,0.1\n'
            f'short,short.wav,{lyrics},0.4,0.2,test,,,\n')
  config.data.source, config.data.manifest, config.data.name = 'manifest', path, 'beam'
  return config


def _records(folder: str, name: str) -> list:
  return [tf.train.Example.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(os.path.join(folder, name))]


def _examples(builder, split: str) -> dict:
  return {ex['song_id'].decode(): ex
          for ex in builder.as_dataset(split=split).as_numpy_iterator()}


def test_beam_path_writes_the_local_paths_data(tmp_path, monkeypatch, own_tempdir):
  config = _release(str(tmp_path))
  config.data.data_dir = str(tmp_path / 'local')
  local = prepare.prepare(config)
  results = []
  finish = beam_prep._Plan.finish

  def spy(plan, result):  # The Beam pipeline's result, as the driver gets it.
    results.append(result)
    return finish(plan, result)

  monkeypatch.setattr(beam_prep._Plan, 'finish', spy)
  config.data.data_dir = str(tmp_path / 'beam')
  config.data.beam = True
  # Two worker threads: songs decoded side by side (the local path's BLAS setting).
  config.data.beam_options = '--direct_num_workers=2 --direct_running_mode=multi_threading'
  # No --runner: the FnApiRunner, not Beam's DirectRunner, which first tried to download
  # its Prism runner from GitHub and left an empty beam-temp* folder in /tmp.
  beam = prepare.prepare(config)
  assert os.listdir(own_tempdir) == []  # Nor did the local path leave anything there.
  # It ran through Beam: its workers decoded every song the driver did not skip.
  (result,) = results
  assert result.state == 'DONE'
  counters = {r.key.metric.name: r.committed for r in result.metrics().query()['counters']
              if r.key.metric.namespace == beam_prep.COUNTERS}
  assert counters == {'songs_decoded': 12, 'songs_unusable': 2}
  # The same variant (name and hash), the same files beside the shards...
  assert (os.path.relpath(beam.data_dir, config.data.data_dir) ==
          os.path.relpath(local.data_dir, str(tmp_path / 'local')))
  names = sorted(os.listdir(local.data_dir))
  assert names == sorted(os.listdir(beam.data_dir))
  for name in names:
    if '.tfrecord' not in name:
      with open(os.path.join(local.data_dir, name), 'rb') as a, \
           open(os.path.join(beam.data_dir, name), 'rb') as b:
        assert a.read() == b.read(), name
    else:  # ...the same records in the same order (a record's map order may differ).
      assert _records(local.data_dir, name) == _records(beam.data_dir, name), name
  assert beam.info.metadata == local.info.metadata
  assert beam.info.metadata['num_written'] == 12
  for split in local.info.splits:
    want, got = _examples(local, split), _examples(beam, split)
    assert want and sorted(got) == sorted(want)
    for song_id, ex in want.items():
      assert ex.keys() == got[song_id].keys()
      for key in ex:
        np.testing.assert_array_equal(got[song_id][key], ex[key], err_msg=key)
  # The same data: either path reuses what the other prepared.
  config.data.data_dir = str(tmp_path / 'local')
  assert prepare.prepare(config).data_dir == local.data_dir and len(results) == 1
  report = pd.read_csv(os.path.join(beam.data_dir, 'prep_report.csv'),
                       keep_default_na=False).set_index('item_id')
  assert len(report) == 16
  for song_id, reason in BROKEN.items():
    assert report.loc[song_id, 'status'] == 'skipped'
    assert report.loc[song_id, 'reason'].startswith(reason), report.loc[song_id]


def test_without_apache_beam_it_says_how_to_install_it(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'apache_beam', None)  # `import apache_beam` fails.
  monkeypatch.delitem(sys.modules, 'data_prep.beam_prep')
  monkeypatch.delattr(data_prep, 'beam_prep')
  config = _release(str(tmp_path))
  config.data.beam = True
  with pytest.raises(ValueError) as e:
    prepare.prepare(config)
  assert logs.user_message(e.value) == prepare.BEAM_MISSING
  assert not os.path.exists(config.data.data_dir)  # Stopped before preparing.


def test_no_readable_reference_song_is_the_local_paths_error(tmp_path):
  config = _release(str(tmp_path))
  with open(config.data.manifest) as f:
    rows = f.read().splitlines()
  # Only the garbage song is in the training split: a worker finds it unusable.
  rows = [r for r in rows if ',train,' not in r or r.startswith('garbage,')]
  with open(config.data.manifest, 'w') as f:
    f.write('\n'.join(rows) + '\n')
  for beam in (False, True):
    config.data.beam = beam
    with pytest.raises(ValueError, match="^no readable song in the 'train' split: "
                       'cannot compute the dB reference power$'):
      prepare.prepare(config)

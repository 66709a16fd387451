"""MERGE reader on a generated miniature of the release layout."""

import os

import numpy as np
import pytest
import soundfile as sf

from configs import exp1
from data_prep import merge, prepare
from data_prep.manifest import ManifestError

# (audio id, lyric id, quadrant, arousal, valence, split part); old ids pair A00x with L0yy.
ROWS = [('A001', 'L051', 'Q4', 0.30, 0.80, 'train'), ('MT0001', 'MT0001', 'Q1', 0.9, 0.7, 'train'),
        ('A002', 'L007', 'Q2', 0.70, 0.20, 'train'), ('MT0002', 'MT0002', 'Q3', 0.1, 0.2, 'train'),
        ('A003', 'L100', 'Q1', 0.60, 0.60, 'validate'), ('MT0003', 'MT0003', 'Q3', 0.2, 0.3, 'test'),
        ('A004', 'L002', 'Q2', 0.80, 0.45, 'test')]


def make_merge(root, rows=ROWS, audio=True):
  base = os.path.join(root, 'MERGE_Bimodal_Complete')
  lines = ['Audio_Song,Lyric_Song,Arousal,Valence']
  lines += [f'{a},{l},{ar},{v}' for a, l, _, ar, v, _ in rows]
  os.makedirs(base)
  with open(os.path.join(base, 'merge_bimodal_complete_av_values.csv'), 'w') as f:
    f.write('\n'.join(lines) + '\n')
  tvt = os.path.join(base, 'tvt_dataframes', 'tvt_70_15_15')
  os.makedirs(tvt)
  for part in ('train', 'validate', 'test'):
    with open(os.path.join(tvt, f'tvt_70_15_15_{part}_bimodal_complete.csv'), 'w') as f:
      f.write('Song,Quadrant\n' + ''.join(f'{a},{q}\n' for a, _, q, _, _, p in rows
                                          if p == part))
  rng = np.random.default_rng(0)
  for a, l, q, _, _, _ in rows:
    os.makedirs(os.path.join(base, 'audio', q), exist_ok=True)
    os.makedirs(os.path.join(base, 'lyrics', q), exist_ok=True)
    if audio:
      sf.write(os.path.join(base, 'audio', q, a + '.mp3'),
               0.1 * rng.standard_normal(22050 * 2).astype(np.float32), 22050, format='MP3')
    with open(os.path.join(base, 'lyrics', q, l + '.txt'), 'w') as f:
      f.write(f'lyrics of {l}\n')
  return base


def test_reads_split_and_pairs_by_row(tmp_path):
  make_merge(str(tmp_path), audio=False)
  songs, skipped, files = merge.read_release(str(tmp_path))
  assert skipped == []
  assert [s.song_id for s in songs] == ['A001', 'MT0001', 'A002', 'MT0002', 'A003',
                                        'MT0003', 'A004']
  by_id = {s.song_id: s for s in songs}
  assert by_id['A001'].lyrics_path.endswith(os.path.join('lyrics', 'Q4', 'L051.txt'))
  assert by_id['A001'].audio_path.endswith(os.path.join('audio', 'Q4', 'A001.mp3'))
  assert by_id['A001'].valence == 0.8 and by_id['A001'].arousal == 0.3
  assert [s.split for s in songs].count('validation') == 1
  assert len(files) == 4
  # Pointing at the variant folder itself works too.
  again, _, _ = merge.read_release(str(tmp_path / 'MERGE_Bimodal_Complete'))
  assert again == songs


def test_missing_release_says_where_and_what(tmp_path):
  config = exp1.get_config()
  config.data.root = str(tmp_path)
  with pytest.raises(merge.DatasetNotFoundError) as e:
    prepare.prepare(config)
  msg = str(e.value)
  assert str(tmp_path) in msg and 'merge_bimodal_complete_av_values.csv' in msg
  assert 'Zenodo' in msg and 'MERGE_Bimodal_Complete' in msg


def test_ids_missing_on_either_side_are_reported(tmp_path):
  base = make_merge(str(tmp_path), audio=False)
  with open(os.path.join(base, 'tvt_dataframes', 'tvt_70_15_15',
                         'tvt_70_15_15_test_bimodal_complete.csv'), 'a') as f:
    f.write('A999,Q1\n')
  with open(os.path.join(base, 'merge_bimodal_complete_av_values.csv'), 'a') as f:
    f.write('A500,L500,0.5,0.5\nA501,L501,,0.4\n')
  with open(os.path.join(base, 'tvt_dataframes', 'tvt_70_15_15',
                         'tvt_70_15_15_train_bimodal_complete.csv'), 'a') as f:
    f.write('A501,Q3\n')
  songs, skipped, _ = merge.read_release(str(tmp_path))
  assert len(songs) == 7
  reasons = {r['item_id']: r['reason'] for r in skipped}
  assert reasons['A999'].startswith('no valence/arousal row')
  assert 'tvt_70_15_15_test_bimodal_complete.csv' in reasons['A999']
  assert reasons['A500'].startswith('in no split file')
  assert reasons['A501'].startswith('label missing or outside 0..1')


def test_song_in_two_splits_is_an_error(tmp_path):
  base = make_merge(str(tmp_path), audio=False)
  with open(os.path.join(base, 'tvt_dataframes', 'tvt_70_15_15',
                         'tvt_70_15_15_test_bimodal_complete.csv'), 'a') as f:
    f.write('A001,Q4\n')
  with pytest.raises(ManifestError, match=r"row 4: song 'A001' is also in the train split"):
    merge.read_release(str(tmp_path))


def test_prepare_merge_end_to_end(tmp_path):
  make_merge(str(tmp_path))
  config = exp1.get_config()
  config.data.root = str(tmp_path)
  config.data.data_dir = str(tmp_path / 'prepared')
  config.data.num_workers = 1
  config.audio.num_frames = 64
  config.text.max_length = 16
  builder = prepare.prepare(config)
  assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {
      'train': 4, 'validation': 1, 'test': 2}
  ex = next(iter(builder.as_dataset(split='validation').as_numpy_iterator()))
  assert ex['song_id'] == b'A003' and ex['mel'].shape == (128, 64)


def test_launch_without_release_prints_a_clear_error(tmp_path):
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  done = subprocess.run(
      [sys.executable, 'launch.py', '--config=configs/exp1.py', f'--workdir={tmp_path}/w',
       f'--config.data.root={tmp_path}/nowhere'], cwd=repo, capture_output=True, text=True)
  assert done.returncode == 1
  assert 'error: MERGE bimodal_complete not found' in done.stderr
  assert 'Traceback' not in done.stderr

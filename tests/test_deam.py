"""DEAM reader on a generated miniature of the release (padded columns, 1..9 scale)."""

import os

import numpy as np
import pandas as pd
import pytest

from configs import exp2_deam
from data_prep import deam, prepare
from data_prep.merge import DatasetNotFoundError
from mer_jax import audio_features
from tests.fakes import write_audio

SONG_LEVEL = os.path.join('DEAM_Annotations', 'annotations',
                          'annotations averaged per song', 'song_level')


def make_deam(root, n=24):
  rng = np.random.default_rng(1)
  ids = [2 + 3 * i for i in range(n)]
  v, a = rng.uniform(1.5, 8.5, n), rng.uniform(1.5, 8.5, n)
  os.makedirs(os.path.join(root, SONG_LEVEL))
  half = n // 2
  with open(os.path.join(root, SONG_LEVEL, 'static_annotations_averaged_songs_1_2000.csv'),
            'w') as f:
    f.write('song_id, valence_mean, valence_std, arousal_mean, arousal_std\n')
    for i in range(half):
      f.write(f'{ids[i]}, {v[i]:.4f}, 1.1, {a[i]:.4f}, 0.8\n')
  with open(os.path.join(root, SONG_LEVEL,
                         'static_annotations_averaged_songs_2000_2058.csv'), 'w') as f:
    f.write('song_id, valence_mean, valence_std, valence_ max_mean, valence_max_std, '
            'arousal_mean, arousal_std\n')
    for i in range(half, n):
      f.write(f'  {ids[i]} ,  {v[i]:.4f} , 1.0, 7, 1, {a[i]:.4f}, 0.9\n')
  rates = (44100, 48000, 22050, 16000)
  for k, sid in enumerate(ids):
    write_audio(os.path.join(root, 'DEAM_audio', 'MEMD_audio', f'{sid}.mp3'), 1.5,
                rates[k % 4], 1 + k % 2, seed=k)
  return ids, v, a


def test_reads_padded_columns_and_scales_labels(tmp_path):
  ids, v, a = make_deam(str(tmp_path))
  config = exp2_deam.get_config()
  config.data.root = str(tmp_path)
  config.data.data_dir = str(tmp_path / 'prepared')
  config.data.num_workers = 1
  config.audio.num_frames = 32
  builder = prepare.prepare(config)
  n = sum(builder.info.splits[s].num_examples for s in builder.info.splits)
  assert n == len(ids)
  for split in builder.info.splits:
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      k = ids.index(int(ex['song_id']))
      assert ex['valence'] == pytest.approx((v[k] - 1) / 8, abs=1e-4)
      assert ex['arousal'] == pytest.approx((a[k] - 1) / 8, abs=1e-4)
      assert ex['token_ids'][0] == 101 and ex['token_ids'][1] == 102  # No lyrics.


def test_bad_rows_and_missing_release(tmp_path):
  with pytest.raises(DatasetNotFoundError, match='MEMD_audio.*static_annotations'):
    deam.layout(str(tmp_path))
  make_deam(str(tmp_path), n=8)
  path = os.path.join(tmp_path, SONG_LEVEL, 'static_annotations_averaged_songs_1_2000.csv')
  with open(path, 'a') as f:
    f.write('999, 10.5, 1, 3, 1\n1000, , 1, 3, 1\n')
  songs, skipped, _ = deam.read_release(str(tmp_path), str(tmp_path / 's.csv'))
  assert len(songs) == 8
  assert {r['item_id'] for r in skipped} == {'999', '1000'}
  assert all('outside 1..9' in r['reason'] for r in skipped)
  with open(path, 'a') as f:
    f.write('2, 4, 1, 3, 1\n')
  with pytest.raises(ValueError, match="song_id '2' already in"):
    deam.read_release(str(tmp_path), str(tmp_path / 's.csv'))


def test_center_crop_matches_librosa_on_the_middle(tmp_path):
  import librosa
  params = audio_features.MelParams(num_frames=200, crop='center')
  path = write_audio(str(tmp_path / 'long.wav'), 40.0, 22050, seed=3)
  got = audio_features.song_mel_power(path, params)
  y, _ = librosa.load(path, sr=22050)
  start = (y.size - 199 * 512) // 2
  start -= start % 512
  want = librosa.feature.melspectrogram(y=y[start:start + 199 * 512 + 1025], sr=22050,
                                        n_fft=2048, hop_length=512, n_mels=128)[:, :200]
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-8)
  assert got.shape == (128, 200)


def test_exp2_deam_experiment_on_generated_release(tmp_path):
  from mer_jax.jobs import sweep
  ids, _, _ = make_deam(str(tmp_path), n=40)
  for sid in ids[:3]:  # Preparation skips these: no run and no baseline sees them.
    os.remove(os.path.join(tmp_path, 'DEAM_audio', 'MEMD_audio', f'{sid}.mp3'))
  config = exp2_deam.get_config()
  config.data.root = str(tmp_path)
  config.data.data_dir = str(tmp_path / 'prepared')
  config.data.num_workers = 1
  config.audio.num_frames = 32
  config.model.audio.widths = (4, 4, 4, 4)
  config.model.audio.hidden = 8
  config.train.batch_size = config.train.eval_batch_size = 8
  config.train.num_epochs = 2
  config.sweep.models = ('model1', 'model4')
  config.sweep.seeds = (0, 1)
  config.sweep.n_bootstrap = 100
  summary = sweep.run(config, str(tmp_path / 'w')).summary
  assert len(summary['finished']) == 4 and not summary['missing']
  table = pd.read_csv(tmp_path / 'w' / 'report' / 'results.csv')
  assert set(table.model) == {'model1 (audio)', 'model4 (audio)'}
  assert np.isfinite(table[['mean', 'std', 'ci_low', 'ci_high']]).all().all()
  # The baselines count the songs the runs were trained and tested on.
  preds = pd.read_csv(tmp_path / 'w' / 'runs' / 'model1-audio-seed0' / 'report' /
                      'predictions.csv')
  n_train, n_test = (preds.split == 'train').sum(), (preds.split == 'test').sum()
  assert n_train + (preds.split == 'validation').sum() + n_test == 37
  for name in ('results.md', 'baselines.md'):
    md = (tmp_path / 'w' / 'report' / name).read_text()
    assert (f'{n_train} training and {n_test} test songs' in md
            and '3 input row(s) skipped by preparation' in md), md
  results_md = (tmp_path / 'w' / 'report' / 'results.md').read_text()
  assert f'Test split ({n_test} songs)' in results_md
  # Music2Emo's DEAM rows under ours, our best R² beside each; not their split.
  best_v = table[(table.metric == 'r2') & (table.dimension == 'valence')]['mean'].max()
  assert (f'| Music2Emo (trained on this dataset) | R² | valence | 0.5131 | {best_v:.3f} '
          in results_md) and results_md.count('| no (theirs: music2emo) |') == 4
  for f in ('results.md', 'baselines.csv', 'quadrant.csv', 'pred_vs_true.png',
            'error_by_quadrant.png', 'va_distribution.png', 'learning_curves.png'):
    assert (tmp_path / 'w' / 'report' / f).stat().st_size > 0

"""Cross-dataset matrix on two synthetic datasets."""

import os

import librosa
import ml_collections
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mer_jax import audio_features as af
from mer_jax import input_pipeline
from mer_jax.jobs import cross
from tests.conftest import tiny_config


def _loud_and_quiet_song(path, seconds, seed):
  """A loud first half and a very quiet second one: many bins near the -80 dB floor."""
  rng = np.random.default_rng(seed)
  n = int(seconds * 22050)
  t = np.arange(n) / 22050
  y = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.05 * rng.standard_normal(n)
  y[n // 2:] *= 10 ** (rng.uniform(-75, -55) / 20)
  sf.write(path, y.astype(np.float32), 22050, subtype='FLOAT')


@pytest.fixture(scope='module')
def quiet_dataset(tmp_path_factory):
  """(builder, {song id: audio path}) of a small manifest dataset with a short
  (padded) test song."""
  from configs import default
  from data_prep import prepare
  root = tmp_path_factory.mktemp('quiet')
  rows = []
  for i, (split, seconds) in enumerate([('train', 3.0), ('train', 2.5), ('test', 3.0),
                                        ('test', 1.3), ('test', 2.0)]):
    path = str(root / f's{i}.wav')
    _loud_and_quiet_song(path, seconds, i)
    rows.append({'song_id': f's{i}', 'audio_path': path, 'lyrics_path': '',
                 'valence': 0.5, 'arousal': 0.5, 'split': split})
  pd.DataFrame(rows).to_csv(root / 'manifest.csv', index=False)
  config = default.get_config()
  config.data.manifest = str(root / 'manifest.csv')
  config.data.data_dir = str(root / 'prepared')
  config.data.lyrics = False
  config.data.num_workers = 1
  config.audio.num_frames = 96  # The 1.3 s song has 56 frames: padded.
  config.text.max_length = 8
  return prepare.prepare(config), {r['song_id']: r['audio_path'] for r in rows}


def _librosa_log_mel(path, ref_power, num_frames):
  """The features extracted directly against `ref_power`, with librosa."""
  y, _ = librosa.load(path, sr=22050, mono=True)
  s = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=512,
                                     n_mels=128, power=2.0)
  db = np.maximum(librosa.power_to_db(s, ref=ref_power, amin=1e-10, top_db=None), -80.0)
  out = np.full((128, num_frames), -80.0, np.float32)
  out[:, :min(num_frames, db.shape[1])] = db[:, :num_frames]
  return out


@pytest.mark.parametrize('factor', [0.25, 4.0])  # Test set louder (+6.02 dB), quieter.
def test_rereferenced_features_equal_a_direct_extraction(quiet_dataset, factor):
  """Test songs re-referenced to another (training) dataset's max power equal the
  same songs extracted against that power, floor and padding included."""
  builder, paths = quiet_dataset
  own = builder.info.metadata['max_power']
  ref = own * factor  # The other dataset's max power.
  offset = 10 * np.log10(own / ref)
  got = {e['song_id'].decode(): e['mel'] for e in input_pipeline.load_split(
      builder, 'test', None, db_offset=offset).as_numpy_iterator()}
  plain = {e['song_id'].decode(): e['mel'] for e in input_pipeline.load_split(
      builder, 'test', None).as_numpy_iterator()}
  assert sorted(got) == ['s2', 's3', 's4']
  moved = 0
  for sid, mel in got.items():
    want = _librosa_log_mel(paths[sid], ref, 96)
    np.testing.assert_allclose(mel, want, atol=1e-2, rtol=0)
    np.testing.assert_allclose(mel, af.log_mel(paths[sid], af.MelParams(num_frames=96),
                                               ref), atol=1e-4, rtol=0)
    # Bins at the floor in the dataset's own reference that the offset lifts above it.
    moved += int(np.sum((plain[sid] == -80.0) & (want > -80.0 + 1e-3)))
  assert (moved > 20) == (factor < 1), moved  # The check covers the floor.
  n_real = 1 + int(1.3 * 22050) // 512
  assert np.all(got['s3'][:, n_real:] == -80.0)  # The short song's padding.
  assert np.any(got['s3'][:, n_real - 1] > -80.0)


def test_offsets_beyond_the_stored_range_are_refused(quiet_dataset):
  with pytest.raises(ValueError, match='beyond the 120 dB'):
    input_pipeline.load_split(quiet_dataset[0], 'test', None, db_offset=130.0)


def test_cross_matrix(tiny_prepared, tiny_root, tmp_path):
  config = tiny_config(tiny_root)
  config.job = 'cross'
  config.train.num_epochs = 2
  from configs import demo, exp2_cross, tiny
  config.cross.names = ('tiny', 'demo')
  # The demo's songs (6 s, windows of its own) but 60 of them, not 300: the matrix is
  # the same size, a fifth of the audio to make and read.
  demo_config = demo.get_config()
  demo_config.data.synthetic.num_songs = 60
  config.cross.datasets = ml_collections.ConfigDict({
      'tiny': exp2_cross.dataset(tiny.get_config()),
      'demo': exp2_cross.dataset(demo_config)})
  config.cross.roots = (os.path.join(tiny_root, 'songs'), str(tmp_path / 'demo_songs'))
  df = cross.run(config, str(tmp_path)).summary['table']
  assert len(df) == 2 * 2 * 2 * 3 and np.isfinite(df.value).all()
  assert set(df.train) == set(df.test) == {'tiny', 'demo'}
  # The diagonal is each model on its own test split: the run's own report.
  for name in ('tiny', 'demo'):
    own = pd.read_csv(tmp_path / 'cross' / name / 'report' / 'metrics.csv')
    for d in ('valence', 'arousal'):
      want = own[(own.split == 'test') & (own.dimension == d) & (own.metric == 'rmse')]
      got = df[(df.train == name) & (df.test == name) & (df.dimension == d)
               & (df.metric == 'rmse')]
      assert got.value.iloc[0] == pytest.approx(want.value.iloc[0], rel=1e-4)
  # An off-diagonal cell, independently: the tiny model predicts the demo test songs
  # from their audio files (features against its own training max power), scored
  # with scikit-learn.
  from sklearn import metrics as skm
  from mer_jax import predict
  predictor = predict.Predictor.from_workdir(str(tmp_path / 'cross' / 'tiny'))
  manifest = pd.read_csv(tmp_path / 'demo_songs' / 'manifest.csv')
  test = manifest[manifest.split == 'test']
  preds = np.array([[predictor.predict(str(tmp_path / 'demo_songs' / p), hop_s=None)[d]
                     for d in ('valence', 'arousal')] for p in test.audio_path])
  for i, d in enumerate(('valence', 'arousal')):
    cell = df[(df.train == 'tiny') & (df.test == 'demo') & (df.dimension == d)]
    cell = cell.set_index('metric').value
    assert cell['r2'] == pytest.approx(skm.r2_score(test[d], preds[:, i]), abs=2e-5)
    assert cell['rmse'] == pytest.approx(
        np.sqrt(skm.mean_squared_error(test[d], preds[:, i])), abs=1e-5)
  md = (tmp_path / 'report' / 'cross_dataset.md').read_text()
  assert '| train \\ test | tiny | demo |' in md

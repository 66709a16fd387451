"""Audio front-ends in the whole loop: prepare -> train -> report -> predict, for the
frozen and fine-tuned musicnn and for the user's precomputed embeddings."""

import os

import jax
import numpy as np
import pandas as pd
import pytest

from mer_jax import frontends, musicnn, predict, train
from tests.conftest import tiny_config, tiny_songs

try:
  musicnn.checkpoint_prefix()
  HAVE_MUSICNN = True
except FileNotFoundError:
  HAVE_MUSICNN = False
needs_musicnn = pytest.mark.skipif(not HAVE_MUSICNN,
                                   reason='musicnn wheel absent (requirements-nodeps.txt)')


def _report(workdir: str) -> str:
  with open(os.path.join(workdir, 'report', 'metrics.md')) as f:
    return f.read()


@pytest.fixture(scope='module')
def musicnn_run(tiny_prepared, tiny_root, tmp_path_factory):
  config = tiny_config(tiny_root)
  config.model.audio_frontend = 'musicnn'
  config.train.num_epochs = 3
  workdir = str(tmp_path_factory.mktemp('musicnn_run'))
  train.train_and_evaluate(config, workdir)
  return config, workdir


@needs_musicnn
def test_frozen_musicnn_caches_the_original_graphs_embeddings(musicnn_run):
  """The cached song embedding = the shipped TF graph's features of the extractor's
  patches of librosa.load at 16 kHz (tiny songs: one 3 s patch). The synthetic songs'
  tonal peaks overflow the extractor's float16 (inf, then NaN tags): the reference
  saturates them as ours does (tests/test_musicnn.py checks that change alone)."""
  import librosa
  from data_prep import prepare
  from tests.musicnn_reference import OriginalMusicnn, extractor_log_mel, extractor_patches
  config, workdir = musicnn_run
  assert '- audio front-end: musicnn MSD (frozen, mean over 3 s patches)' in _report(workdir)
  builder = prepare.prepare(config)
  cached = [f for f in os.listdir(builder.data_dir) if f.startswith('audio_emb_musicnn_')]
  assert len(cached) == 1
  emb = frontends.get(config).embeddings(builder)
  songs = tiny_songs(config)
  ids = sorted(emb)[:3]
  original = OriginalMusicnn(musicnn.checkpoint_prefix())
  for i in ids:
    y, _ = librosa.load(songs.loc[i.decode(), 'audio'], sr=16000)
    _, feats = original.run(extractor_patches(extractor_log_mel(y, saturate=True)))
    np.testing.assert_allclose(emb[i], feats.mean(axis=0), atol=1e-4)


@needs_musicnn
def test_frozen_musicnn_predicts_new_songs_as_it_was_trained(musicnn_run):
  config, workdir = musicnn_run
  predictor = predict.Predictor.from_workdir(workdir)
  assert predictor.audio_params.sample_rate == 16000
  prepared = predict.predict_prepared(predictor, 'test').set_index('song_id')
  songs = tiny_songs(config)
  for song_id in prepared.index[:3]:
    res = predictor.predict(songs.loc[song_id, 'audio'], songs.loc[song_id, 'lyrics'],
                            hop_s=None)
    assert res['valence'] == pytest.approx(prepared.loc[song_id, 'valence_pred'], abs=1e-5)
    assert res['arousal'] == pytest.approx(prepared.loc[song_id, 'arousal_pred'], abs=1e-5)


@needs_musicnn
def test_fine_tuned_musicnn_starts_from_the_shipped_weights_and_trains(
    tiny_prepared, tiny_root, tmp_path, xla_optimized):
  from mer_jax import checkpointing, optim
  config = tiny_config(tiny_root)
  config.model.audio_frontend = 'musicnn'
  config.model.musicnn.trainable = True
  config.model.musicnn.warmup_steps = 1
  config.model.modality = 'audio'
  config.train.num_epochs = 1
  workdir = str(tmp_path / 'ft')
  train.train_and_evaluate(config, workdir)
  assert 'musicnn MSD (fine-tuned' in _report(workdir)
  _, state = checkpointing.restore_best(workdir)
  shipped = musicnn.load_variables()
  got = state['params']['audio']['musicnn']['dense']['kernel']
  assert got.shape == shipped['params']['dense']['kernel'].shape
  # It trained, from the shipped weights, at its own learning rate: Adam moves a weight
  # by about the learning rate a step (1e-4 here, 3e-3 for the head).
  change = np.abs(got - shipped['params']['dense']['kernel']).max()
  steps = int(state['step'])
  assert 0 < change <= 2 * steps * config.model.musicnn.learning_rate
  stats = state['batch_stats']['audio']['musicnn']['dense_bn']['mean']
  assert not np.allclose(stats, shipped['batch_stats']['dense_bn']['mean'])
  # The tower has its own optimizer group (learning rate, warm-up).
  labels = optim.param_labels(state['params'], ('audio',))
  assert set(jax.tree.leaves(labels['audio'])) == {'audio'}
  assert set(jax.tree.leaves(labels['fusion_out'])) == {'main'}
  predictor = predict.Predictor.from_workdir(workdir)
  song = tiny_songs(config).iloc[0]
  res = predictor.predict(song.audio, None, hop_s=None)
  assert 0 < res['valence'] < 1


def _embedding_files(config, folder: str, dim: int = 16) -> dict[str, np.ndarray]:
  """One [frames, dim] float32 file per tiny song, and broken files for five songs."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(4)
  ids = list(tiny_songs(config).index)
  arrays = {}
  for k, song_id in enumerate(ids):
    x = rng.normal(size=(int(rng.integers(1, 6)), dim)).astype(np.float32)
    x[:, 0] += 3 * tiny_songs(config).loc[song_id, 'arousal']  # Some signal.
    arrays[song_id] = x
    np.save(os.path.join(folder, f'{song_id}.npy'), x)
  broken = {ids[0]: 'embedding missing', ids[1]: 'embedding not finite',
            ids[2]: 'embedding dtype', ids[3]: 'embedding shape',
            ids[4]: 'embedding unreadable'}
  os.remove(os.path.join(folder, f'{ids[0]}.npy'))
  bad = arrays[ids[1]].copy()
  bad[0, 0] = np.nan
  np.save(os.path.join(folder, f'{ids[1]}.npy'), bad)
  np.save(os.path.join(folder, f'{ids[2]}.npy'), np.ones((2, dim), np.int64))
  np.save(os.path.join(folder, f'{ids[3]}.npy'), np.ones((2, 2, dim), np.float32))
  with open(os.path.join(folder, f'{ids[4]}.npy'), 'w') as f:
    f.write('not an array')
  return arrays, broken


def test_embeddings_frontend_lists_bad_files_trains_and_predicts(tiny_prepared, tiny_root,
                                                                 tmp_path):
  from data_prep import prepare
  config = tiny_config(tiny_root)
  config.model.audio_frontend = 'embeddings'
  config.model.modality = 'audio'
  config.data.embeddings_dir = str(tmp_path / 'emb')
  config.train.num_epochs = 2
  arrays, broken = _embedding_files(config, config.data.embeddings_dir)
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(config, workdir)
  builder = prepare.prepare(config)
  rep = pd.read_csv(os.path.join(builder.data_dir, 'prep_report.csv'),
                    dtype={'item_id': str}, keep_default_na=False).set_index('item_id')
  for song_id, kind in broken.items():
    assert rep.loc[song_id, 'status'] == 'skipped'
    assert rep.loc[song_id, 'reason'].startswith(kind), rep.loc[song_id, 'reason']
  written = rep.index[rep.status == 'written']
  assert len(written) == len(arrays) - len(broken)
  stored = frontends.get(config).embeddings(builder)
  for song_id in written:
    np.testing.assert_allclose(stored[song_id.encode()],
                               arrays[song_id].astype(np.float64).mean(axis=0), rtol=1e-6)
  assert '- audio front-end: embeddings from' in _report(workdir)
  predictor = predict.Predictor.from_workdir(workdir)
  prepared = predict.predict_prepared(predictor, 'test').set_index('song_id')
  song_id = prepared.index[0]
  res = predictor.predict(None, embedding=os.path.join(config.data.embeddings_dir,
                                                       f'{song_id}.npy'))
  assert res['valence'] == pytest.approx(prepared.loc[song_id, 'valence_pred'], abs=1e-6)
  with pytest.raises(ValueError, match='--embedding'):
    predictor.predict(tiny_songs(config).loc[song_id, 'audio'])


def test_embeddings_that_disagree_in_dim_are_an_error_or_skips(tiny_root, tmp_path):
  from data_prep import prepare
  config = tiny_config(tiny_root)
  config.model.audio_frontend = 'embeddings'
  config.data.embeddings_dir = str(tmp_path / 'emb')
  config.data.data_dir = str(tmp_path / 'prepared')
  arrays, _ = _embedding_files(config, config.data.embeddings_dir)
  odd = list(arrays)[7]
  np.save(os.path.join(config.data.embeddings_dir, f'{odd}.npy'), np.ones(8, np.float32))
  with pytest.raises(ValueError, match=r'disagree in dim: 8 \(.*' + odd + r'\.npy\), 16'):
    prepare.prepare(config)
  config.model.embeddings.dim = 16  # Keep dim 16: the odd song is a listed skip.
  builder = prepare.prepare(config)
  rep = pd.read_csv(os.path.join(builder.data_dir, 'prep_report.csv'),
                    dtype={'item_id': str}, keep_default_na=False).set_index('item_id')
  assert rep.loc[odd, 'reason'].startswith('embedding dim: ')


def test_every_frontend_is_named_and_unknown_ones_listed(tiny_root):
  config = tiny_config(tiny_root)
  assert set(frontends.names()) >= {'vgg', 'musicnn', 'embeddings'}
  config.model.audio_frontend = 'clap'
  with pytest.raises(ValueError, match='embeddings.*musicnn.*vgg'):
    frontends.get(config)
  pooled = frontends.pool(np.array([[1.0, 2.0], [3.0, 6.0]]), 'mean_std')
  np.testing.assert_allclose(pooled, [2.0, 4.0, 1.0, 2.0])


@needs_musicnn
def test_musicnn_rows_are_named_in_results_and_the_siamese_task_uses_it(
    musicnn_run, tiny_root, tmp_path):
  from mer_jax import results
  config, workdir = musicnn_run
  assert results.frontend_of([workdir]) == 'musicnn MSD (frozen, mean over 3 s patches)'
  siamese = tiny_config(tiny_root)
  siamese.task = 'siamese'
  siamese.model.audio_frontend = 'musicnn'
  siamese.siamese.embed_dim = 8
  siamese.siamese.proj_hidden = 16
  siamese.train.num_epochs = 2
  wd = str(tmp_path / 'siamese')
  train.train_and_evaluate(siamese, wd)
  predictor = predict.Predictor.from_workdir(wd)
  prepared = predict.predict_prepared(predictor, 'test').set_index('song_id')
  song_id = prepared.index[0]
  song = tiny_songs(siamese).loc[song_id]
  res = predictor.predict(song.audio, song.lyrics, hop_s=None)
  assert res['congruence'] == pytest.approx(prepared.loc[song_id, 'congruence'], abs=1e-5)


@needs_musicnn
def test_cross_dataset_matrix_with_musicnn(tiny_prepared, tiny_root, tmp_path):
  """Two synthetic datasets, frozen musicnn audio-only models: an off-diagonal cell
  equals the training dataset's model predicting the other's test files (sklearn)."""
  import ml_collections
  from sklearn import metrics as skm
  from configs import exp2_cross, tiny
  from mer_jax.jobs import cross
  config = tiny_config(tiny_root)
  config.job = 'cross'
  config.model.audio_frontend = 'musicnn'
  config.train.num_epochs = 2
  other = tiny.get_config()
  other.data.name = 'tiny2'
  other.data.synthetic.seed = 1
  config.cross.names = ('tiny', 'tiny2')
  config.cross.datasets = ml_collections.ConfigDict({
      'tiny': exp2_cross.dataset(tiny.get_config()), 'tiny2': exp2_cross.dataset(other)})
  config.cross.roots = (os.path.join(tiny_root, 'songs'), str(tmp_path / 'tiny2_songs'))
  df = cross.run(config, str(tmp_path)).summary['table']
  predictor = predict.Predictor.from_workdir(str(tmp_path / 'cross' / 'tiny'))
  assert predictor.audio_params.sample_rate == 16000
  manifest = pd.read_csv(tmp_path / 'tiny2_songs' / 'manifest.csv')
  test = manifest[manifest.split == 'test']
  preds = np.array([[predictor.predict(str(tmp_path / 'tiny2_songs' / p), hop_s=None)[d]
                     for d in ('valence', 'arousal')] for p in test.audio_path])
  for i, d in enumerate(('valence', 'arousal')):
    cell = df[(df.train == 'tiny') & (df.test == 'tiny2') & (df.dimension == d)]
    assert cell.set_index('metric').value['r2'] == pytest.approx(
        skm.r2_score(test[d], preds[:, i]), abs=2e-5)

"""The musicnn port against the original: the shipped MSD_musicnn graph run in
TensorFlow (tests/musicnn_reference.py) and the extractor's librosa recipe."""

import os

import jax
import numpy as np
import pytest

from mer_jax import audio_features, frontends, musicnn

try:
  PREFIX = musicnn.checkpoint_prefix()
except FileNotFoundError as e:  # CI installs it (requirements-nodeps.txt).
  pytestmark = pytest.mark.skip(reason=f'musicnn wheel absent: {e}')
  PREFIX = None

TOL = 1e-4  # Tags and features vs the original graph.
SPEC_TOL = 1e-3  # Input spectrogram vs the extractor's recipe.
PARAMS_16K = audio_features.MelParams(sample_rate=16000, n_fft=512, hop_length=256,
                                      n_mels=96, num_frames=1877)


@pytest.fixture(scope='module')
def original():
  from tests.musicnn_reference import OriginalMusicnn
  return OriginalMusicnn(PREFIX)


@pytest.fixture(scope='module')
def ours():
  variables = musicnn.load_variables()
  model = musicnn.Musicnn()
  return jax.jit(lambda x: model.apply(variables, x))


def _music_mp3(path: str, seconds: float = 30.0, gain: float = 0.5, seed: int = 3):
  """A 44.1 kHz stereo MP3 of the synthetic demo music."""
  import soundfile as sf
  import soxr
  from data_prep import synthetic
  params = synthetic.SyntheticParams(duration_s=seconds)
  rng = np.random.default_rng(seed)
  y = synthetic.synthesize(*rng.uniform(size=2), params, rng)
  y = soxr.resample(y, params.sample_rate, 44100)
  stereo = np.stack([y, np.roll(y, 300)], axis=1) * gain
  sf.write(path, stereo.astype(np.float32), 44100, format='MP3')
  return path


def test_weights_are_every_number_of_the_checkpoint():
  import tensorflow as tf
  reader = tf.compat.v1.train.NewCheckpointReader(PREFIX)
  shipped = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
             if 'Adam' not in k and not k.endswith('_power')}
  leaves = jax.tree.leaves(musicnn.load_variables())
  assert sum(x.size for x in leaves) == 792_079 == sum(v.size for v in shipped.values())
  # Each shipped array is used once (as itself, or the mid-end's 1-D view of it).
  ours = sorted(float(np.sum(np.abs(x), dtype=np.float64)) for x in leaves)
  theirs = sorted(float(np.sum(np.abs(v), dtype=np.float64)) for v in shipped.values())
  np.testing.assert_allclose(ours, theirs, rtol=1e-12)
  assert musicnn.tags()[:3] == ('rock', 'pop', 'alternative') and len(musicnn.tags()) == 50


def test_tags_and_features_equal_the_shipped_graph_on_random_patches(original, ours):
  rng = np.random.default_rng(20261202)
  # The input's range: log10(10000 mel + 1) lies in 0..4.82.
  patches = rng.uniform(0, 4.8, (5, musicnn.PATCH_FRAMES, musicnn.N_MELS)).astype(np.float32)
  patches[0] = 0.0  # Digital silence.
  tags, feats = original.run(patches)
  out = ours(patches)
  assert np.abs(np.asarray(out['tags']) - tags).max() <= TOL
  assert np.abs(np.asarray(out['penultimate']) - feats).max() <= TOL
  assert np.abs(feats).max() > 1.0 and tags.std() > 1e-3  # Not a vacuous comparison.


def test_a_30s_mp3_equals_the_extractor_end_to_end(tmp_path, original, ours):
  """librosa.load + the extractor's spectrogram and patches + the shipped graph, vs
  our decoder, log_mel, patches, Musicnn and the frozen front-end's song embedding."""
  import librosa
  from tests.musicnn_reference import extractor_log_mel, extractor_patches
  path = _music_mp3(str(tmp_path / 'clip.mp3'))
  y_ref, _ = librosa.load(path, sr=16000)
  rep = extractor_log_mel(y_ref)
  assert np.isfinite(rep).all()  # A realistic level: the extractor's float16 holds it.
  ref_tags, ref_feats = original.run(extractor_patches(rep))
  assert len(ref_feats) == 10  # 30 s: ten 3 s patches.

  y = audio_features.load_audio(path, PARAMS_16K)
  x = musicnn.log_mel(y)
  assert x.shape == rep.shape
  assert np.abs(x - rep.astype(np.float32)).max() <= SPEC_TOL
  starts = musicnn.patch_starts(len(x), musicnn.PATCH_FRAMES)
  out = ours(np.stack([x[s:s + musicnn.PATCH_FRAMES] for s in starts]))
  assert np.abs(np.asarray(out['tags']) - ref_tags).max() <= TOL
  assert np.abs(np.asarray(out['penultimate']) - ref_feats).max() <= TOL

  from mer_jax.frontends import musicnn as musicnn_frontend
  for pooling in ('mean', 'mean_std'):
    emb = musicnn_frontend.Embedder(musicnn.PATCH_FRAMES, pooling).embed(
        [musicnn.song_input(y, PARAMS_16K.num_frames)])[0]
    want = ref_feats.mean(axis=0)
    if pooling == 'mean_std':
      want = np.concatenate([want, ref_feats.std(axis=0)])
    assert np.abs(emb - want).max() <= TOL


def test_loud_bins_saturate_where_the_extractor_overflows():
  """10000 * mel overflows float16 above a mel power of 6.55: inf in the extractor,
  float16's largest value here; every other bin is the extractor's number."""
  from tests.musicnn_reference import extractor_log_mel
  t = np.arange(3 * 16000) / 16000
  y = (0.99 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
  with np.errstate(over='ignore'):
    ref = extractor_log_mel(y).astype(np.float32)
  x = musicnn.log_mel(y)
  over = ~np.isfinite(ref)
  assert over.any() and np.isfinite(x).all()
  top = np.log10(np.float32(np.finfo(np.float16).max) + 1)
  np.testing.assert_allclose(x[over], top, atol=SPEC_TOL)
  np.testing.assert_array_equal(x[~over], ref[~over])


def test_short_input_is_repeat_padded_and_patches_are_the_extractors():
  from tests.musicnn_reference import extractor_patches
  rng = np.random.default_rng(5)
  x = rng.uniform(0, 4, (100, 96)).astype(np.float32)
  padded = musicnn.repeat_pad(x)
  np.testing.assert_array_equal(padded, np.concatenate([x, x[:87]]))
  long = rng.uniform(0, 4, (700, 96)).astype(np.float32)
  for hop in (187, 93, 50):
    mine = np.stack([long[s:s + 187] for s in musicnn.patch_starts(700, hop)])
    np.testing.assert_array_equal(mine, extractor_patches(long, 187, hop))


def test_fine_tuned_tower_pools_the_real_patches(original):
  """MusicnnTower (eval) = mean / std over a song's real patches of the shipped graph's
  features, padded frames left out."""
  rng = np.random.default_rng(9)
  frames = 560  # Room for 3 patches at hop 187.
  x = rng.uniform(0, 4.5, (2, frames, 96)).astype(np.float32)
  real = np.array([frames, 400])  # Song 2: only 2 patches are real.
  x[1, 400:] = 0.0
  v = musicnn.load_variables()
  variables = {k: {'musicnn': t} for k, t in v.items()}
  for pooling in ('mean', 'mean_std'):
    tower = musicnn.MusicnnTower(patch_hop=187, pooling=pooling)
    got = np.asarray(tower.apply(variables, x, real))
    for i, n in enumerate(real):
      starts = musicnn.patch_starts(int(n), 187)
      _, feats = original.run(np.stack([x[i, s:s + 187] for s in starts]))
      np.testing.assert_allclose(got[i], frontends.pool(feats, pooling), atol=TOL)


def test_input_window_matches_the_features_window():
  from mer_jax.frontends import musicnn as musicnn_frontend
  p = musicnn_frontend.input_params(audio_features.MelParams())  # 1292 frames = 30.0 s.
  assert p.sample_rate == 16000 and p.hop_length == 256 and p.n_mels == 96
  # A 30 s clip at 16 kHz fits whole: 1 + 480000 // 256 = 1876 frames.
  assert audio_features.window_samples(p) >= 30 * 16000
  assert p.num_frames == 1877 and p.crop == 'start'
  assert os.path.isfile(PREFIX + '.meta')

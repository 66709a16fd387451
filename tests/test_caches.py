"""mer_jax.caches: what is kept between processes is exactly what would be computed
again (converted encoder weights, mel filters), a damaged or unwritable entry costs
only time, and JAX's compilation cache is turned on unless the user chose one."""

import os
import subprocess
import sys

import librosa
import numpy as np
import pytest

from mer_jax import audio_features, bert, caches

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_encoder_weights_are_read_back_equal_without_transformers(tmp_path, monkeypatch):
  monkeypatch.setenv('MER_JAX_CACHE', str(tmp_path))
  config, fresh = bert.load_bert('minilm')  # Converted by transformers, then cached.
  assert len(os.listdir(tmp_path / 'encoders')) == 1

  def no_conversion(path):
    raise AssertionError('converted again')

  monkeypatch.setattr(bert, '_converted_params', no_conversion)
  config2, cached = bert.load_bert('minilm')
  assert config2.to_dict() == config.to_dict()
  flat = dict(bert.jax.tree_util.tree_leaves_with_path(fresh))
  again = dict(bert.jax.tree_util.tree_leaves_with_path(cached))
  assert flat.keys() == again.keys() and len(flat) > 90
  for k, v in flat.items():
    assert again[k].dtype == v.dtype
    np.testing.assert_array_equal(np.asarray(again[k]), np.asarray(v), err_msg=str(k))


def test_mel_filters_from_the_cache_are_librosas(tmp_path, monkeypatch):
  monkeypatch.setenv('MER_JAX_CACHE', str(tmp_path))
  params = audio_features.MelParams(sample_rate=16000, n_fft=1024, n_mels=40)
  audio_features._mel_plan.cache_clear()
  audio_features._mel_plan(params)  # Computed, written.
  audio_features._mel_plan.cache_clear()
  window, groups = audio_features._mel_plan(params)  # Read back.
  fb = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=40)
  rebuilt = np.zeros_like(fb)
  for m0, m1, k0, k1, part in groups:
    rebuilt[m0:m1, k0:k1] = part
  np.testing.assert_array_equal(rebuilt, fb)
  np.testing.assert_array_equal(
      window, librosa.filters.get_window('hann', 1024, fftbins=True).astype(np.float32))
  audio_features._mel_plan.cache_clear()


def test_damaged_or_unwritable_entries_cost_only_time(tmp_path, monkeypatch):
  calls = []

  def make():
    calls.append(1)
    return {'x': np.arange(5.0)}

  monkeypatch.setenv('MER_JAX_CACHE', str(tmp_path))
  key = {'what': 'test', 'n': 5}
  np.testing.assert_array_equal(caches.arrays('t', key, make)['x'], np.arange(5.0))
  np.testing.assert_array_equal(caches.arrays('t', key, make)['x'], np.arange(5.0))
  assert len(calls) == 1  # The second came from the file.
  (entry,) = (tmp_path / 't').iterdir()
  entry.write_bytes(b'not an npz')  # Damaged: computed again and rewritten.
  np.testing.assert_array_equal(caches.arrays('t', key, make)['x'], np.arange(5.0))
  assert len(calls) == 2
  np.testing.assert_array_equal(caches.arrays('t', key, make)['x'], np.arange(5.0))
  assert len(calls) == 2
  monkeypatch.setenv('MER_JAX_CACHE', '')  # Off: computed every time, nothing written.
  assert caches.root() is None and caches.folder('t') is None
  caches.arrays('t', key, make)
  assert len(calls) == 3
  ro = tmp_path / 'file'
  ro.write_text('')
  monkeypatch.setenv('MER_JAX_CACHE', str(ro))  # A file: the folder cannot be made.
  assert caches.folder('t') is None
  np.testing.assert_array_equal(caches.arrays('t', key, make)['x'], np.arange(5.0))


@pytest.mark.parametrize('chosen', [False, True])
def test_compilation_cache_unless_the_user_chose_one(tmp_path, chosen):
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(('JAX_COMPILATION_CACHE', 'JAX_PERSISTENT_CACHE'))}
  env['MER_JAX_CACHE'] = str(tmp_path / 'mine')
  if chosen:
    env['JAX_COMPILATION_CACHE_DIR'] = str(tmp_path / 'theirs')
  code = ('import jax; from mer_jax import caches; print(caches.enable_compilation_cache()); '
          'jax.jit(lambda x: x * 2 + 1)(jax.numpy.ones(3)).block_until_ready(); '
          'print(jax.config.jax_persistent_cache_min_compile_time_secs)')
  done = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-2000:]
  folder, min_time = done.stdout.split()
  want = tmp_path / ('theirs' if chosen else 'mine/xla')
  assert folder == str(want)
  if not chosen:
    assert float(min_time) == 0.0
    assert any(want.iterdir())  # The small program was written.

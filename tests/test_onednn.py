"""oneDNN's 3x3 convolutions (mer_jax.onednn, through mer_jax.conv) against jax.grad of
lax.conv_general_dilated, XLA's own convolution at full float32 precision."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from mer_jax import conv, onednn
from tests import test_conv


@pytest.fixture
def fresh():
  """Traces made with oneDNN on or off are not reused by the next test."""
  jax.clear_caches()
  onednn.available.cache_clear()
  yield
  jax.clear_caches()
  onednn.available.cache_clear()


def _lax_conv(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), 'SAME', precision=lax.Precision.HIGHEST,
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def test_available_where_requirements_and_a_compiler_are(fresh):
  # requirements.txt installs the oneDNN wheels; CI's machine has a C++ compiler.
  assert onednn.onednn_files() is not None
  if shutil.which('c++') is None and shutil.which('g++') is None:
    pytest.skip('no C++ compiler on this machine')
  assert onednn.available()


@pytest.mark.parametrize('shape', [(2, 9, 13, 3, 5), (1, 16, 20, 64, 8), (3, 5, 7, 70, 2),
                                   (2, 11, 17, 1, 8), (2, 7, 9, 4, 1), (1, 1, 1, 2, 3)])
def test_values_and_gradients_match_lax(shape, fresh):
  if not onednn.available():
    pytest.skip('oneDNN convolutions unavailable here')
  n, h, w, cin, cout = shape
  rng = np.random.default_rng()
  x = jnp.asarray(rng.normal(size=(n, h, w, cin)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, cin, cout)), jnp.float32)
  dy = jnp.asarray(rng.normal(size=(n, h, w, cout)), jnp.float32)
  got_y, vjp = jax.vjp(conv.conv3x3, x, k)
  want_y, want_vjp = jax.vjp(_lax_conv, x, k)
  # float32 sums of 9 Cin products in another order: rounding relative to the largest.
  np.testing.assert_allclose(got_y, want_y, rtol=1e-5,
                             atol=2e-6 * float(jnp.max(jnp.abs(want_y))))
  for g, e, name in zip(jax.jit(vjp)(dy), want_vjp(dy), ('dx', 'dw')):
    scale = float(jnp.max(jnp.abs(e)))
    np.testing.assert_allclose(g, e, atol=2e-5 * scale, rtol=1e-5, err_msg=name)
  hlo = jax.jit(lambda x, k: jax.vjp(conv.conv3x3, x, k)[1](dy)).lower(x, k).as_text()
  assert 'mer_conv3x3_input_grad' in hlo and 'mer_conv3x3_weight_grad' in hlo


def test_inconsistent_shapes_are_an_error_not_a_crash(fresh):
  if not onednn.available():
    pytest.skip('oneDNN convolutions unavailable here')
  x = jnp.ones((1, 4, 5, 3))
  with pytest.raises(Exception, match='inconsistent shapes'):
    # dy with 6 channels against a kernel with 2 outputs.
    jax.block_until_ready(onednn.input_grad(jnp.ones((1, 4, 5, 6)),
                                            jnp.ones((3, 3, 3, 2))))
  np.testing.assert_allclose(onednn.forward(x, jnp.ones((3, 3, 3, 2)))[0, 1, 1], 27.0)


def test_switched_off_bfloat16_and_xla_paths_use_no_custom_call(fresh, monkeypatch):
  x, w = jnp.ones((1, 6, 7, 4)), jnp.ones((3, 3, 4, 2))

  def hlo(x, w):
    jax.clear_caches()
    return jax.jit(conv.conv3x3).lower(x, w).as_text()
  if onednn.available():
    assert 'mer_conv3x3_forward' in hlo(x, w)
  assert 'mer_conv3x3' not in hlo(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16))
  monkeypatch.setenv(onednn.ENV, '0')
  onednn.available.cache_clear()
  assert not onednn.available()
  assert 'mer_conv3x3' not in hlo(x, w)


def test_build_is_reused_and_rebuilt_when_the_source_changes(tmp_path, monkeypatch):
  files = onednn.onednn_files()
  cxx = shutil.which('c++') or shutil.which('g++')
  if files is None or cxx is None:
    pytest.skip('no oneDNN wheels or C++ compiler')
  first = onednn.build(str(tmp_path), *files, cxx)
  stamp = os.stat(first).st_mtime_ns
  assert onednn.build(str(tmp_path), *files, cxx) == first
  assert os.stat(first).st_mtime_ns == stamp  # Not compiled again.
  changed = tmp_path / 'conv3x3_onednn.cc'
  changed.write_text(open(onednn.SOURCE).read() + '\n// changed\n')
  monkeypatch.setattr(onednn, 'SOURCE', str(changed))
  second = onednn.build(str(tmp_path), *files, cxx)
  assert second != first and os.path.isfile(second)
  assert sorted(os.listdir(tmp_path)) == sorted(
      ['conv3x3_onednn.cc', os.path.basename(first), os.path.basename(second)])
  changed.write_text('this is not C++')
  with pytest.raises(RuntimeError, match='failed'):
    onednn.build(str(tmp_path), *files, cxx)
  assert len(os.listdir(tmp_path)) == 3  # No half-written library left behind.


def test_vgg_gradients_equal_with_onednn_and_xla(fresh):
  if not onednn.available():
    pytest.skip('oneDNN convolutions unavailable here')
  rng = np.random.default_rng()
  mel = jnp.asarray(rng.uniform(-80, 0, (2, 32, 48)), jnp.float32)
  grads = {}
  for impl in ('xla', 'auto'):
    step, params = test_conv.vgg_step(impl, (8, 16, 32, 40), mel)
    if impl == 'auto':
      assert 'mer_conv3x3_weight_grad' in step.lower(params).as_text()
    grads[impl] = step(params)
  test_conv.assert_same_loss_and_gradients(grads['auto'], grads['xla'])


_CHILD = '''
import hashlib, sys
import jax.numpy as jnp, numpy as np
from mer_jax import onednn
rng = np.random.default_rng(0)
x = jnp.asarray(rng.normal(size=(4, 24, 40, 16)), jnp.float32)
dy = jnp.asarray(rng.normal(size=(4, 24, 40, 32)), jnp.float32)
a, b = (np.asarray(onednn.weight_grad(x, dy)) for _ in range(2))
assert (a == b).all()
print(hashlib.sha256(a.tobytes()).hexdigest())
'''


def test_fresh_processes_register_and_repeat_bit_for_bit(tmp_path):
  """A process's first call registers the handlers itself, and the weight gradient
  (a reduction over threads) is the same bits in every call and process: resumed runs
  repeat uninterrupted ones exactly."""
  import subprocess
  import sys
  if not onednn.available():
    pytest.skip('oneDNN convolutions unavailable here')
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu', 'PYTHONPATH': root}
  digests = [subprocess.run([sys.executable, '-c', _CHILD], env=env, cwd=tmp_path,
                            capture_output=True, text=True, check=True).stdout.split()[-1]
             for _ in range(2)]
  assert digests[0] == digests[1]

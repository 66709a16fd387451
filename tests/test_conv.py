"""The 3x3 convolution's custom gradients against jax.grad of lax.conv_general_dilated:
XLA's path (oneDNN's is tests/test_onednn.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from mer_jax import conv, onednn, vgg


@pytest.fixture(autouse=True)
def xla_path(monkeypatch):
  """Every test here checks the XLA path, oneDNN or not on this machine."""
  monkeypatch.setattr(onednn, 'usable', lambda x, w: False)
  jax.clear_caches()
  yield
  jax.clear_caches()


def _lax_conv(x, w):
  return lax.conv_general_dilated(x, w, (1, 1), 'SAME',
                                  dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('shape', [(2, 9, 13, 3, 5), (1, 16, 20, 64, 8), (3, 5, 7, 70, 2),
                                   (2, 11, 17, 1, 8), (2, 7, 9, 4, 1)])
@pytest.mark.parametrize('block_bytes', [conv.BLOCK_BYTES, 20_000])
def test_conv3x3_values_and_gradients_match_lax(shape, block_bytes, monkeypatch):
  # Small blocks: the weight gradient sums over several row blocks per image.
  monkeypatch.setattr(conv, 'BLOCK_BYTES', block_bytes)
  n, h, w, cin, cout = shape
  rng = np.random.default_rng()
  x = jnp.asarray(rng.normal(size=(n, h, w, cin)), jnp.float32)
  k = jnp.asarray(rng.normal(size=(3, 3, cin, cout)), jnp.float32)
  dy = jnp.asarray(rng.normal(size=(n, h, w, cout)), jnp.float32)
  np.testing.assert_allclose(conv.conv3x3(x, k), _lax_conv(x, k), rtol=1e-5, atol=1e-5)
  want = jax.vjp(_lax_conv, x, k)[1](dy)
  got = jax.jit(lambda x, k: jax.vjp(conv.conv3x3, x, k)[1](dy))(x, k)
  for g, e, name in zip(got, want, ('dx', 'dw')):
    scale = float(jnp.max(jnp.abs(e)))
    np.testing.assert_allclose(g, e, atol=2e-5 * scale, rtol=1e-5, err_msg=name)


def test_one_input_channel_is_not_an_xla_convolution():
  """The log-mel layer's forward pass is the elementwise fusion (Eigen's small-channel
  convolution is ~3x slower there); wider inputs stay XLA convolutions."""
  def hlo(cin):
    x, w = jnp.zeros((2, 16, 24, cin)), jnp.zeros((3, 3, cin, 8))
    return jax.jit(conv.conv3x3).lower(x, w).compile().as_text()
  assert ' convolution(' not in hlo(1)
  assert ' convolution(' in hlo(2)


def test_one_input_channel_in_bfloat16_is_summed_in_float32():
  rng = np.random.default_rng()
  x = jnp.asarray(rng.normal(size=(2, 6, 9, 1)), jnp.bfloat16)
  w = jnp.asarray(rng.normal(size=(3, 3, 1, 4)), jnp.bfloat16)
  got = conv.conv3x3(x, w)
  assert got.dtype == jnp.bfloat16
  # Reference: the same bfloat16 inputs, convolved exactly in float64 by numpy.
  xp = np.pad(np.asarray(x, np.float64)[..., 0], ((0, 0), (1, 1), (1, 1)))
  want = sum(xp[:, p:p + 6, q:q + 9, None] * np.asarray(w, np.float64)[p, q, 0]
             for p in range(3) for q in range(3))
  # One bfloat16 rounding of the float32 sum: half an ulp, 2^-8 relative at most.
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=2 ** -8, atol=1e-6)


def test_rows_per_block_divides_height_and_fits():
  for h, w, cin in [(128, 1292, 16), (64, 646, 128), (9, 13, 3), (7, 5000, 512)]:
    r = conv._rows_per_block(h, w, cin, 4)
    assert h % r == 0
    assert r == 1 or r * w * 9 * cin * 4 <= conv.BLOCK_BYTES
    assert all(h % q or q * w * 9 * cin * 4 > conv.BLOCK_BYTES for q in range(r + 1, h + 1))


def test_dispatch_uses_conv3x3_only_where_it_applies(monkeypatch):
  calls = []
  real = conv.conv3x3
  monkeypatch.setattr(conv, 'conv3x3', lambda x, w: calls.append(w.shape) or real(x, w))
  x = jnp.ones((1, 8, 8, 64))
  dn = lax.conv_dimension_numbers(x.shape, (3, 3, 64, 4), ('NHWC', 'HWIO', 'NHWC'))
  w = jnp.ones((3, 3, 64, 4))
  conv.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=dn)
  conv.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)], dimension_numbers=dn)
  assert len(calls) == 2
  for args in ((x, w, (2, 2), 'SAME'), (x, w, (1, 1), 'VALID'),
               (x, w, (1, 1), [(0, 0), (1, 1)]),  # Not 'SAME'.
               (x, jnp.ones((5, 5, 64, 4)), (1, 1), 'SAME')):
    out = conv.conv_general_dilated(*args, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    np.testing.assert_allclose(out, lax.conv_general_dilated(
        *args, dimension_numbers=('NHWC', 'HWIO', 'NHWC')), rtol=1e-6)
  assert len(calls) == 2


def vgg_step(impl: str, widths, mel):
  """A jitted (loss, parameter gradients) of a train-mode VGG and its parameters."""
  model = vgg.VGG(widths=widths, hidden=16, out_dim=4, dropout=0.0, conv_impl=impl)
  v = model.init(jax.random.key(0), mel)

  def loss(p):
    out, _ = model.apply({'params': p, 'batch_stats': v['batch_stats']}, mel,
                         train=True, mutable=['batch_stats'])
    return jnp.sum(out ** 2)
  return jax.jit(jax.value_and_grad(loss)), v['params']


def assert_same_loss_and_gradients(got, want):
  assert float(got[0]) == pytest.approx(float(want[0]), rel=1e-5)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got[1]),
                          jax.tree.leaves(want[1])):
    scale = float(jnp.max(jnp.abs(b))) + 1e-12
    np.testing.assert_allclose(a, b, atol=1e-4 * scale, rtol=1e-4,
                               err_msg=jax.tree_util.keystr(path))


def test_vgg_gradients_equal_with_either_conv_impl():
  """A VGG whose deeper blocks take the custom path: same loss, same gradients."""
  rng = np.random.default_rng()
  mel = jnp.asarray(rng.uniform(-80, 0, (2, 32, 48)), jnp.float32)
  grads = {}
  for impl in ('xla', 'auto'):
    step, params = vgg_step(impl, (8, 64, 64, 96), mel)
    grads[impl] = step(params)
  assert_same_loss_and_gradients(grads['auto'], grads['xla'])

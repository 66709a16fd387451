"""3x3 'SAME' convolution whose gradients are computed the way XLA's CPU backend is
fast at (the VGG audio tower's every layer).

XLA:CPU runs a 3x3 convolution's forward pass and its input gradient at matmul speed but
its weight gradient up to ~27x slower for the same FLOPs (measured on the VGG's layer
shapes, benchmarks/). `conv3x3` is `lax.conv_general_dilated` with a custom VJP:

  input gradient  = the forward convolution of dy with the kernel flipped in space and
                    its in/out channels swapped (what the transposed convolution is);
  weight gradient = one GEMM: the nine shifted views of the zero-padded input,
                    concatenated on channels [N, H, W, 9 Cin], contracted with dy
                    [N, H, W, Cout] over N, H, W -> [9 Cin, Cout] -> [3, 3, Cin, Cout].

The values are those of `jax.grad` of `lax.conv_general_dilated` up to float rounding
(tests/test_conv.py). The GEMM materialises 9x the layer's input and only pays off
from MIN_CHANNELS input channels (measured on 2 cores: 2.6-3x faster at 128-512
channels, slower below 32), so `conv_general_dilated` uses it on the CPU backend for
those layers only; accelerators keep XLA's own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ('NHWC', 'HWIO', 'NHWC')
MIN_CHANNELS = 64  # Input channels from which conv3x3's gradients are faster.


def _conv(x: jax.Array, w: jax.Array, precision=None) -> jax.Array:
  return lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=_NHWC,
                                  precision=precision)


@jax.custom_vjp
def conv3x3(x: jax.Array, w: jax.Array) -> jax.Array:
  """[N, H, W, Cin] * [3, 3, Cin, Cout] -> [N, H, W, Cout], stride 1, 'SAME' padding."""
  return _conv(x, w)


def _fwd(x, w):
  return _conv(x, w), (x, w)


def _bwd(res, dy):
  x, w = res
  n, h, wd, cin = x.shape
  dx = _conv(dy, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2))
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  cols = jnp.concatenate([xp[:, i:i + h, j:j + wd, :] for i in range(3) for j in range(3)],
                         axis=-1)
  dw = jnp.dot(cols.reshape(-1, 9 * cin).T, dy.reshape(-1, dy.shape[-1]),
               preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), dw.reshape(3, 3, cin, -1).astype(w.dtype)


conv3x3.defvjp(_fwd, _bwd)


def _is_same_3x3(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                 dimension_numbers, feature_group_count) -> bool:
  if lhs.ndim != 4 or rhs.shape[:2] != (3, 3) or feature_group_count != 1:
    return False
  if tuple(window_strides) != (1, 1):
    return False
  if padding != 'SAME' and [tuple(p) for p in padding] != [(1, 1), (1, 1)]:
    return False
  for d in (lhs_dilation, rhs_dilation):
    if d is not None and tuple(d) != (1, 1):
      return False
  want = lax.conv_dimension_numbers(lhs.shape, rhs.shape, _NHWC)
  return lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers) == want


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None,
                         feature_group_count=1, precision=None, **kwargs):
  """Drop-in for `lax.conv_general_dilated` (flax `nn.Conv(conv_general_dilated=...)`):
  3x3 stride-1 'SAME' NHWC convolutions with >= MIN_CHANNELS inputs on the CPU backend
  go through `conv3x3`, everything else through lax."""
  if (jax.default_backend() == 'cpu' and precision is None and not kwargs
      and rhs.ndim == 4 and rhs.shape[2] >= MIN_CHANNELS
      and _is_same_3x3(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                       dimension_numbers, feature_group_count)):
    return conv3x3(lhs, rhs)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding,
                                  lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                                  dimension_numbers=dimension_numbers,
                                  feature_group_count=feature_group_count,
                                  precision=precision, **kwargs)

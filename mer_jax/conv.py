"""3x3 'SAME' convolution whose forward pass and gradients run the way the CPU backend
is fast at (the VGG audio tower's every layer).

`conv3x3` is `lax.conv_general_dilated` with a custom VJP. On the CPU backend, float32,
one device, it runs oneDNN's forward, input-gradient and weight-gradient primitives
(`mer_jax.onednn`: XLA FFI custom calls; what PyTorch runs on CPU). Measured on 2 cores,
Model 4's train step at widths 8..64 took 0.39 s with them against 0.76 s with XLA's
own (benchmarks/RESULTS.md). Otherwise (no C++ compiler or oneDNN wheels,
`MER_JAX_ONEDNN=0`, bfloat16, several devices) XLA computes it, arranged the way
XLA:CPU is fast at:

  forward         = XLA's convolution, except from a single input channel (the
                    log-mel), which is nine shifted multiply-adds (`_conv_one_channel`);
  input gradient  = the forward convolution of dy with the kernel flipped in space and
                    its in/out channels swapped (what the transposed convolution is);
  weight gradient = GEMMs over blocks of rows: for each block of R image rows, the nine
                    shifted views of the zero-padded input, concatenated on channels
                    [R W, 9 Cin], contracted with dy [R W, Cout] -> [Cout, 9 Cin], summed
                    over blocks in a loop. A block is a few MB, so the 9x-wide copy stays
                    in cache instead of materialising 9x the layer's input in memory.
                    (XLA's own weight gradient costs 3-9x its forward pass.)

Either way the values are those of `jax.grad` of `lax.conv_general_dilated` up to float
rounding (tests/test_conv.py, tests/test_onednn.py). `conv_general_dilated` sends every
3x3 'SAME' layer on the CPU backend to `conv3x3`; accelerators keep XLA's own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from mer_jax import onednn

_NHWC = ('NHWC', 'HWIO', 'NHWC')
# Bytes of one block's shifted-input matrix [R W, 9 Cin]: fits in L2/L3 cache.
BLOCK_BYTES = 6 << 20


def _conv(x: jax.Array, w: jax.Array, precision=None) -> jax.Array:
  if precision is None and onednn.usable(x, w):
    return onednn.forward(x, w)
  if x.shape[-1] == 1 and precision is None:
    return _conv_one_channel(x, w)
  return lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=_NHWC,
                                  precision=precision)


def _conv_one_channel(x: jax.Array, w: jax.Array) -> jax.Array:
  """[N, H, W, 1] * [3, 3, 1, Cout] -> [N, H, W, Cout] as the sum of nine shifted
  copies of the input times one kernel row each: one elementwise fusion.

  XLA:CPU hands convolutions of <= 16 channels to Eigen, which runs the log-mel's
  1 -> Cout layer at ~3 GFLOP/s (~110 ms for Model 4's first layer at batch 16 on
  30 s songs, 2 cores); the fusion takes ~36 ms (benchmarks/RESULTS.md)."""
  _, h, wd, _ = x.shape
  # Summed in float32 at least, as XLA's convolution accumulates (bfloat16 inputs).
  dtype = jnp.result_type(x, w)
  acc = jnp.promote_types(dtype, jnp.float32)
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))).astype(acc)
  w = w.astype(acc)
  out = xp[:, :h, :wd] * w[0, 0, 0]
  for p in range(3):
    for q in range(3):
      if p or q:
        out = out + xp[:, p:p + h, q:q + wd] * w[p, q, 0]
  return out.astype(dtype)


@jax.custom_vjp
def conv3x3(x: jax.Array, w: jax.Array) -> jax.Array:
  """[N, H, W, Cin] * [3, 3, Cin, Cout] -> [N, H, W, Cout], stride 1, 'SAME' padding."""
  return _conv(x, w)


def _fwd(x, w):
  return _conv(x, w), (x, w)


def _rows_per_block(h: int, w: int, cin: int, itemsize: int) -> int:
  """Largest divisor R of h whose block matrix [R w, 9 cin] holds <= BLOCK_BYTES."""
  fit = max(1, BLOCK_BYTES // (w * 9 * cin * itemsize))
  return max(r for r in range(1, min(h, fit) + 1) if h % r == 0)


def weight_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  """d(sum(conv3x3(x, w) * dy))/dw: [N, H, W, Cin], [N, H, W, Cout] -> [3, 3, Cin, Cout]."""
  n, h, wd, cin = x.shape
  cout = dy.shape[-1]
  r = _rows_per_block(h, wd, cin, x.dtype.itemsize)
  blocks = h // r
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))

  def body(i, acc):
    s, b = i // blocks, i % blocks
    xb = lax.dynamic_slice(xp, (s, b * r, 0, 0), (1, r + 2, wd + 2, cin))[0]
    db = lax.dynamic_slice(dy, (s, b * r, 0, 0), (1, r, wd, cout))[0]
    cols = jnp.concatenate([xb[p:p + r, q:q + wd] for p in range(3) for q in range(3)],
                           axis=-1)
    # dy^T cols, not cols^T dy: XLA:CPU's GEMM is ~1.5x faster with this operand order.
    return acc + lax.dot_general(db.reshape(r * wd, cout), cols.reshape(r * wd, 9 * cin),
                                 (((0,), (0,)), ((), ())),
                                 preferred_element_type=jnp.float32)

  acc = lax.fori_loop(0, n * blocks, body, jnp.zeros((cout, 9 * cin), jnp.float32))
  return acc.T.reshape(3, 3, cin, cout)


def _bwd(res, dy):
  x, w = res
  if onednn.usable(x, w):
    return onednn.input_grad(dy, w), onednn.weight_grad(x, dy)
  dx = _conv(dy, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2))
  return dx.astype(x.dtype), weight_grad(x, dy).astype(w.dtype)


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
  3x3 stride-1 'SAME' NHWC convolutions on the CPU backend go through `conv3x3`,
  everything else through lax."""
  if (jax.default_backend() == 'cpu' and precision is None and not kwargs
      and rhs.ndim == 4
      and _is_same_3x3(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                       dimension_numbers, feature_group_count)):
    return conv3x3(lhs, rhs)
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding,
                                  lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                                  dimension_numbers=dimension_numbers,
                                  feature_group_count=feature_group_count,
                                  precision=precision, **kwargs)

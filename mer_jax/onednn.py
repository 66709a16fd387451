"""oneDNN's 3x3 convolutions on the CPU backend (`mer_jax.conv` uses them when present).

XLA:CPU runs the VGG's convolutions 2-3x slower than oneDNN, the library PyTorch runs on
CPU: Eigen takes those of <= 16 channels, and a weight gradient in XLA needs its nine
shifted input columns written out (benchmarks/RESULTS.md). `native/conv3x3_onednn.cc`
calls oneDNN's forward, input-gradient and weight-gradient primitives as XLA FFI custom
calls, on JAX's own NHWC / HWIO buffers.

oneDNN comes from the pinned PyPI wheels `onednn-cpu-gomp` (the library) and
`onednn-devel-cpu-gomp` (its headers; requirements.txt). The handlers are compiled once
per source / jax / compiler / library with the system C++ compiler (`$CXX`, else `c++`;
~2 s) into the cache folder (`mer_jax.caches`; a temporary folder when caching is off)
and loaded in every later process. Without a compiler or the wheels, or with
`MER_JAX_ONEDNN=0`, `available()` is False (the reason logged once) and `mer_jax.conv`
keeps XLA's convolutions: the same values up to float rounding (tests/test_onednn.py).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sysconfig
import tempfile
import threading

import jax
import jax.numpy as jnp

ENV = 'MER_JAX_ONEDNN'  # '0': never use oneDNN (XLA's convolutions).
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'native',
                      'conv3x3_onednn.cc')
LIBRARY = 'libdnnl.so.3'  # oneDNN 3.x's soname, as the wheel installs it.
# FFI target name -> the handler's symbol in the built library.
_TARGETS = {'mer_conv3x3_forward': 'MerConv3x3Forward',
            'mer_conv3x3_input_grad': 'MerConv3x3InputGrad',
            'mer_conv3x3_weight_grad': 'MerConv3x3WeightGrad'}


def onednn_files(prefix: str | None = None) -> tuple[str, str] | None:
  """(include folder, library file) of the pip-installed oneDNN, or None. The wheels put
  them under the environment's data prefix (`<venv>/include`, `<venv>/lib`)."""
  prefix = prefix or sysconfig.get_paths()['data']
  include = os.path.join(prefix, 'include')
  library = os.path.join(prefix, 'lib', LIBRARY)
  if os.path.isfile(os.path.join(include, 'oneapi', 'dnnl', 'dnnl.hpp')) and (
      os.path.isfile(library)):
    return include, library
  return None


def build(out_dir: str, include: str, library: str, cxx: str) -> str:
  """Compiles SOURCE into `out_dir` and returns the shared library's path. The name
  carries a hash of everything the binary depends on, so a changed source, jax (its FFI
  headers), compiler or oneDNN builds anew; an existing build is reused. Written under
  a temporary name and renamed: a crash never leaves half a library."""
  version = subprocess.run([cxx, '--version'], capture_output=True, text=True,
                           check=True).stdout.splitlines()[0]
  with open(SOURCE, 'rb') as f:
    source = f.read()
  key = hashlib.sha256(b'\0'.join([
      source, jax.__version__.encode(), version.encode(), library.encode(),
      str(os.path.getsize(library)).encode()])).hexdigest()[:16]
  path = os.path.join(out_dir, f'conv3x3_onednn-{key}.so')
  if os.path.isfile(path):
    return path
  fd, tmp = tempfile.mkstemp(dir=out_dir, prefix='.building-', suffix='.so')
  os.close(fd)
  command = [cxx, '-O2', '-std=c++17', '-shared', '-fPIC', '-w',
             '-I', jax.ffi.include_dir(), '-I', include, SOURCE, library,
             f'-Wl,-rpath,{os.path.dirname(library)}', '-o', tmp]
  try:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
      raise RuntimeError(f'{cxx} failed: {done.stderr.strip()[-2000:]}')
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  return path


_FIRST_CALL = threading.Lock()  # One build and one registration per process.


@functools.lru_cache(maxsize=None)
def available() -> bool:
  """Whether oneDNN's convolutions are built, loaded and registered with XLA in this
  process (done on the first call; False, with the reason logged once, when they
  cannot be)."""
  with _FIRST_CALL:
    return _load()


def _load() -> bool:
  if os.environ.get(ENV, '1') == '0':
    logging.info('%s=0: XLA\'s convolutions', ENV)
    return False
  files = onednn_files()
  cxx = os.environ.get('CXX') or shutil.which('c++') or shutil.which('g++')
  if files is None or cxx is None:
    missing = ('oneDNN (pip install -r requirements.txt: onednn-cpu-gomp, '
               'onednn-devel-cpu-gomp)' if files is None else 'a C++ compiler ($CXX, c++)')
    logging.warning('no %s: XLA\'s own convolutions are used (2-3x slower on CPU)',
                    missing)
    return False
  from mer_jax import caches  # Light: numpy only.
  out_dir = caches.folder('native')
  if out_dir is None:  # Caching off: this process's own folder, gone at its exit.
    out_dir = tempfile.mkdtemp(prefix='mer-jax-native-')
    atexit.register(shutil.rmtree, out_dir, ignore_errors=True)
  # oneDNN's OpenMP threads sleep between convolutions instead of spinning on the cores
  # XLA's own threads need next (2-5 % of a step; read when libgomp loads).
  os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
  try:
    path = build(out_dir, *files, cxx)
    lib = ctypes.cdll.LoadLibrary(path)
    for target, symbol in _TARGETS.items():
      jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)),
                                  platform='cpu')
  except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
    logging.warning('oneDNN convolutions unavailable (%s): XLA\'s are used', e)
    return False
  logging.info('oneDNN convolutions: %s', path)
  return True


def usable(x: jax.Array, w: jax.Array) -> bool:
  """Whether `conv3x3(x, w)` can run on oneDNN: the CPU backend, float32, non-empty, one
  device (XLA's SPMD partitioner cannot split a custom call, so several devices keep
  XLA's convolutions), and the library available."""
  return (jax.default_backend() == 'cpu' and x.dtype == w.dtype == jnp.float32
          and x.size > 0 and w.size > 0 and jax.device_count() == 1 and available())


def _call(target: str, shape: tuple[int, ...], *args: jax.Array) -> jax.Array:
  if not available():  # Also what registers the targets with XLA.
    raise RuntimeError('oneDNN convolutions are unavailable here (the log says why)')
  return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(shape, jnp.float32),
                          vmap_method='sequential')(*args)


def forward(x: jax.Array, w: jax.Array) -> jax.Array:
  """x [N, H, W, Ci] * w [3, 3, Ci, Co] -> [N, H, W, Co] (stride 1, 'SAME')."""
  return _call('mer_conv3x3_forward', x.shape[:3] + w.shape[3:], x, w)


def input_grad(dy: jax.Array, w: jax.Array) -> jax.Array:
  """The gradient of `forward` with respect to x: dy [N, H, W, Co] -> [N, H, W, Ci]."""
  return _call('mer_conv3x3_input_grad', dy.shape[:3] + w.shape[2:3], dy, w)


def weight_grad(x: jax.Array, dy: jax.Array) -> jax.Array:
  """The gradient of `forward` with respect to w: -> [3, 3, Ci, Co]."""
  return _call('mer_conv3x3_weight_grad', (3, 3, x.shape[3], dy.shape[3]), x, dy)

"""launch.py's malloc settings: the process restarts once with them, keeps its
interpreter options and arguments, and glibc then serves a large allocation from its
heap (not a fresh mmap); an explicit GLIBC_TUNABLES (even empty) opts out."""

import json
import os
import subprocess
import sys

import pytest

from mer_jax import allocator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = '''
import ctypes, json, os, sys
sys.path.insert(0, {repo!r})
from mer_jax import allocator
allocator.reexec_with_tunables()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
p = libc.malloc(100 << 20)  # Over glibc's default 32 MB mmap threshold.
heap = []
for line in open('/proc/self/maps'):
  lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
  if line.rstrip().endswith('[heap]'):
    heap.append((lo, hi))
print(json.dumps({{'tunables': os.environ.get('GLIBC_TUNABLES'), 'argv': sys.argv[1:],
                  'optimize': sys.flags.optimize,
                  'in_heap': any(lo <= p < hi for lo, hi in heap)}}))
'''


def _child(tmp_path, env_tunables, source=CHILD, args=('-O', '{script}', 'a', '--b=c d')):
  """Runs `source` (formatted with the repo) in a fresh Python with GLIBC_TUNABLES =
  `env_tunables` (None: unset); its last stdout line, as JSON."""
  script = tmp_path / 'child.py'
  script.write_text(source.format(repo=REPO))
  env = {k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'}
  if env_tunables is not None:
    env['GLIBC_TUNABLES'] = env_tunables
  done = subprocess.run([sys.executable, *(a.format(script=script) for a in args)],
                        env=env, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc tunables: Linux')
def test_reexec_applies_tunables_and_keeps_the_command_line(tmp_path):
  got = _child(tmp_path, None)
  assert got['tunables'] == allocator.TUNABLES
  assert got['argv'] == ['a', '--b=c d'] and got['optimize'] == 1
  assert got['in_heap']  # mmap_max=0: the 100 MB block comes from the heap.


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc tunables: Linux')
def test_explicit_tunables_opt_out(tmp_path):
  got = _child(tmp_path, '')
  assert got['tunables'] == ''  # Not restarted: the user's (empty) setting stands.
  assert not got['in_heap']  # glibc's default: a fresh mmap.


STEP = '''
import json, resource, sys
sys.path.insert(0, {repo!r})
from mer_jax import allocator
allocator.reexec_with_tunables()
on = allocator.run_on_calling_thread()
import jax, jax.numpy as jnp, numpy as np
x = jnp.asarray(np.random.default_rng(0).standard_normal((4096, 8192), np.float32))
# exp(x) feeds two dots: a 128 MB temporary, over glibc's 64 MB per-thread heaps.
f = jax.jit(lambda x: (lambda t: (t @ x[0], x[:, 0] @ t))(jnp.exp(x)))
jax.block_until_ready(f(x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
  jax.block_until_ready(f(x))
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({{'on': on, 'faults': faults, 'ready_at_return': f(x)[0].is_ready()}}))
'''


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc tunables: Linux')
def test_computations_on_the_calling_thread_reuse_the_heap(tmp_path):
  """With launch.py's tunables, `run_on_calling_thread` turns JAX's asynchronous CPU
  dispatch off: a computation's result is ready when the call returns, and its large
  temporary comes from the main thread's heap again, not from fresh pages (page
  faults of 5 calls, against the same process with asynchronous dispatch)."""
  def run(tunables):
    return _child(tmp_path, tunables, STEP, ('{script}',))

  ours = run(None)
  # The same malloc settings with dispatch left asynchronous: glibc reads mmap_max=00
  # as 0, run_on_calling_thread does not recognise it and leaves JAX as it is.
  other = run(allocator.TUNABLES.replace('glibc.malloc.mmap_max=0:', '') +
              ':glibc.malloc.mmap_max=00')
  assert ours['on'] and ours['ready_at_return']
  assert not other['on'] and not other['ready_at_return']
  assert other['faults'] >= 5 * 32  # >= 2 MB pages of 5 fresh 64+ MB blocks.
  assert ours['faults'] * 5 < other['faults'], (ours, other)
  opted_out = run('')
  assert not opted_out['on'] and not opted_out['ready_at_return']

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


def _child(tmp_path, env_tunables):
  script = tmp_path / 'child.py'
  script.write_text(CHILD.format(repo=REPO))
  env = {k: v for k, v in os.environ.items() if k != 'GLIBC_TUNABLES'}
  if env_tunables is not None:
    env['GLIBC_TUNABLES'] = env_tunables
  done = subprocess.run([sys.executable, '-O', str(script), 'a', '--b=c d'], env=env,
                        capture_output=True, text=True, timeout=60)
  assert done.returncode == 0, done.stderr
  return json.loads(done.stdout)


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

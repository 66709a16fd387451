"""glibc malloc settings for training processes, applied by re-executing the entry point.

XLA:CPU (and PyTorch) allocate a step's temporaries with malloc. glibc serves each
allocation over 32 MB with a fresh mmap and unmaps it on free, so every step pays the
first-touch page faults of its large temporaries again (Model 4 at batch 16 on 30 s
songs has ~85 MB activations at full resolution; the train-step benchmark spent 2 of
its 5 minutes in the kernel; the demo's 6 s songs stay mostly under 32 MB). Serving them from malloc's heap (`mmap_max=0`), never giving
freed memory back (`trim_threshold`) and backing the heap with transparent huge pages
(`hugetlb=1`, glibc >= 2.35; ignored by older ones) removes those faults: training steps
15-25 % faster with the same numbers (where memory lies does not change arithmetic;
benchmarks/RESULTS.md). The cost: the process keeps its peak memory until it exits.

glibc reads its tunables once, at process start, hence the re-exec.
"""

from __future__ import annotations

import os
import sys

TUNABLES = ('glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:'
            'glibc.malloc.trim_threshold=68719476736')


def reexec_with_tunables() -> None:
  """Restarts this Python process (same interpreter, options and arguments) with
  GLIBC_TUNABLES = TUNABLES; returns at once on a platform other than Linux or when
  GLIBC_TUNABLES is already set (by the re-exec, by the user, or empty to opt out).

  Call it first in an entry point's `__main__`, before anything heavy is imported."""
  if not sys.platform.startswith('linux') or 'GLIBC_TUNABLES' in os.environ:
    return
  os.environ['GLIBC_TUNABLES'] = TUNABLES
  sys.stdout.flush()
  sys.stderr.flush()
  os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])

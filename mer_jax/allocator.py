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

The heap only serves the main thread's large blocks: glibc gives every other thread
its own arena, whose heaps are at most 64 MB, and falls back to mmap beyond that
whatever the tunables say. With JAX's asynchronous CPU dispatch a computation runs on
one of the client's threads, so the steps' temporaries (Model 5's demo step: one 754 MB
block) were mapped and unmapped again, and the kernel zeroed their pages: 0.1 s of
system time per Model 5 step and a 0.35 s one every few steps, ~10 % of Model 4's step.
`run_on_calling_thread` turns that dispatch off where these tunables apply: each
computation then runs on the thread that calls it (the main one), from the heap.
Model 5's demo step 681 -> 571 ms (mean), Model 4's 170 -> 155 ms, Model 1's 51 -> 46
ms, the same numbers (benchmarks/RESULTS.md). Python no longer queues the next step
while one runs, which costs nothing here: the batches wait ready in memory.
"""

from __future__ import annotations

import os
import sys

_HEAP_ONLY = 'glibc.malloc.mmap_max=0'  # Large blocks from the heap, never mmap.
TUNABLES = ('glibc.malloc.hugetlb=1:' + _HEAP_ONLY + ':'
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


def run_on_calling_thread() -> bool:
  """Turns JAX's asynchronous CPU dispatch off when the process runs with malloc's heap
  for large blocks (`TUNABLES`' mmap_max=0; why: the module's docstring). Call it before
  JAX's first computation (the CPU client reads it once). Returns whether it did."""
  if _HEAP_ONLY not in os.environ.get('GLIBC_TUNABLES', '').split(':'):
    return False
  import jax
  jax.config.update('jax_cpu_enable_async_dispatch', False)
  return True

"""Training runs side by side, each in its own worker process (`sweep.parallel_runs`).

Why: on a CPU one small run keeps the cores only partly busy (Python between steps and
epochs, validation, checkpoints, report plots, XLA's small convolutions), so two runs
at once finish sooner than one after the other. Measured on 2 cores, demo data, two
seeds at once vs one after the other: Model 1 1.26x (96 -> 76 s), Model 5 (fine-tuned
MiniLM, matmul-bound) 1.14x. On a GPU the runs would share one device: keep 1.

Each worker is a `spawn`ed process (JAX is not fork-safe) that trains runs one after
another: it imports TensorFlow, JAX and transformers once (8-14 s on 2 cores), not once
per run. A run's output (log lines, progress) goes to `<run workdir>/train.log`; the
parent prints each run's end. Workers are not pinned to a share of the CPUs: XLA splits
its CPU kernels by the number of CPUs it may use, so a run pinned to 1 of 2 CPUs sums
in another order (differences ~1e-6) while an unpinned one writes byte-identical
results to the same run trained alone (tests/test_sweep.py), and on 2 cores it was
no slower (Model 1 pair: 73 s unpinned, 76 s pinned). On many cores, n runs then start
n thread pools of all cores each: choose n by the machine's memory and the runs' size.
"""

from __future__ import annotations

import concurrent.futures as futures
import contextlib
import logging
import multiprocessing
import os
import sys
import time
from typing import Callable, Iterator, Sequence

import ml_collections

LOG = 'train.log'


def _train_one(config: ml_collections.ConfigDict, workdir: str) -> None:
  """In a worker process: trains one run into `workdir`."""
  os.makedirs(workdir, exist_ok=True)
  sys.stdout.flush()  # The previous run's last lines go to its own log.
  sys.stderr.flush()
  with open(os.path.join(workdir, LOG), 'a') as log:
    os.dup2(log.fileno(), 1)  # The run's log lines and progress, not the terminal's.
    os.dup2(log.fileno(), 2)
  from mer_jax import allocator, caches, logs, train
  allocator.run_on_calling_thread()  # The parent's malloc settings reach the worker.
  logs.quiet_library_logs()
  caches.enable_compilation_cache()
  try:
    train.train_and_evaluate(config, workdir)
  except Exception:
    logging.exception('the run failed')  # Its log says why; the parent gets the error.
    raise
  finally:
    sys.stdout.flush()
    sys.stderr.flush()


@contextlib.contextmanager
def start_workers(workers: int) -> Iterator[futures.ProcessPoolExecutor]:
  """`workers` worker processes for `train_all`, kept across its calls (a sweep's main
  runs, then its ablation: each worker's start-up is paid once)."""
  if workers < 1:
    raise ValueError(f'sweep.parallel_runs={workers}: must be at least 1')
  with futures.ProcessPoolExecutor(
      workers, mp_context=multiprocessing.get_context('spawn')) as pool:
    for _ in range(workers):  # Their imports overlap the caller's data preparation.
      pool.submit(_import_libraries)
    yield pool


def _import_libraries() -> None:
  from mer_jax import train  # noqa: F401  TensorFlow, JAX, Flax: 8-14 s on 2 cores.


def train_all(runs: Sequence[tuple[str, ml_collections.ConfigDict, str]],
              workers: int, say: Callable[[str], None] = print,
              pool: futures.ProcessPoolExecutor | None = None
              ) -> Iterator[tuple[str, float]]:
  """Trains (name, config, workdir) runs, `workers` at a time, in the processes of
  `pool` (`start_workers(workers)`; None: started here for these runs); yields (name,
  wall seconds from its start; what remains of a worker's start-up counts in its first
  run's) as each ends.

  The data must be prepared and its caches filled beforehand (`train.load_data` in
  this process): workers only read them. A failed run raises its error here, after
  the runs already running have ended; the runs not started then never start."""
  if pool is None:
    with start_workers(workers) as own:
      yield from train_all(runs, workers, say, own)
    return
  say(f'{len(runs)} runs, {workers} at a time, each logging to <its workdir>/{LOG}')
  queue = iter(runs)
  running: dict[futures.Future, tuple[str, str, float]] = {}
  ended, failed = 0, None

  def start_next() -> None:  # Submitted one by one: a failure stops the rest.
    for name, config, workdir in queue:
      running[pool.submit(_train_one, config, workdir)] = (name, workdir,
                                                           time.perf_counter())
      return

  for _ in range(workers):
    start_next()
  while running:
    done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
    for f in done:
      name, workdir, t0 = running.pop(f)
      ended += 1
      seconds = time.perf_counter() - t0
      try:
        f.result()
      except Exception as e:  # The first failure: the runs not yet started never start.
        say(f'{name}: failed ({type(e).__name__}; see {os.path.join(workdir, LOG)})')
        failed = failed or e
        continue
      if failed is None:
        start_next()
      say(f'[{ended}/{len(runs)}] {name}: finished in {seconds:.0f} s')
      yield name, seconds
  if failed is not None:
    raise failed

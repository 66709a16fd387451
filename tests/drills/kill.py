"""Kill drills: a command SIGKILLed at random points, rerun until it completes.

A point is a stage of the work, seen from outside (a file appearing: the first
checkpoint, the report folder, the first prediction row), plus a random delay drawn
from a share of the time that stage lasted in the uninterrupted run, so the kill lands
anywhere inside the stage rather than at its edge.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import time
from typing import Callable

import numpy as np

from tests.drills import world as world_lib
from tests.drills.table import KILLED, Row

TIMEOUT_S = 300.0


@dataclasses.dataclass(frozen=True)
class Point:
  stage: str  # What the table shows ('training, after a checkpoint').
  ready: Callable[[], bool]  # The stage has begun.
  share: float  # The delay is U(0, share x the stage's reference length).
  # The stage has ended (its output is complete): a kill after that came too late.
  # Checked after the kill, so a file that appears as the signal goes out counts.
  over: Callable[[], bool] = lambda: False


def _start(cmd: list[str], cwd: str, env: dict) -> subprocess.Popen:
  return subprocess.Popen(cmd, cwd=cwd, env={**os.environ, 'HF_HUB_OFFLINE': '1', **env},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def timed(cmd: list[str], cwd: str, env: dict, marks: list[Callable[[], bool]]
          ) -> tuple[float, list[float]]:
  """Runs `cmd` to the end: (seconds, seconds at which each mark first held)."""
  proc = _start(cmd, cwd, env)
  t0, seen = time.monotonic(), [None] * len(marks)
  while proc.poll() is None and time.monotonic() - t0 < TIMEOUT_S:
    now = time.monotonic() - t0
    for i, mark in enumerate(marks):
      if seen[i] is None and mark():
        seen[i] = now
    time.sleep(0.005)
  err = proc.stderr.read()
  if proc.wait() != 0:
    raise AssertionError(f'{cmd} failed: {err[-2000:]}')
  total = time.monotonic() - t0
  return total, [total if s is None else s for s in seen]


def killed(cmd: list[str], cwd: str, env: dict, point: Point, span_s: float,
           rng: np.random.Generator, scale: float = 1.0) -> tuple[bool, float]:
  """Starts `cmd`, waits for `point.ready`, then U(0, scale x share x span_s) seconds,
  then SIGKILL. Returns (whether the kill landed inside the stage: before the command
  ended and before `point.over`, the delay)."""
  proc = _start(cmd, cwd, env)
  t0 = time.monotonic()
  while proc.poll() is None and not point.ready():
    if time.monotonic() - t0 > TIMEOUT_S:
      break
    time.sleep(0.002)
  delay = float(rng.uniform(0, scale * point.share * span_s))
  end = time.monotonic() + delay
  while proc.poll() is None and time.monotonic() < end:
    time.sleep(0.002)
  landed = proc.poll() is None
  if landed:
    proc.send_signal(signal.SIGKILL)
  proc.wait()
  proc.stderr.close()
  return landed and not point.over(), delay


def completes(cmd: list[str], cwd: str, env: dict) -> str:
  """Runs `cmd` to the end (the rerun after the kills); returns its stderr."""
  done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                        env={**os.environ, 'HF_HUB_OFFLINE': '1', **env}, timeout=TIMEOUT_S)
  if done.returncode != 0:
    raise AssertionError(f'{cmd} failed after the kills: {done.stderr[-2000:]}')
  return done.stderr


def chain(world, entry: str, points: list, cmd_for: Callable[[], list[str]], env: dict,
          reference_total: float, marks: list[float], compare: Callable,
          half_written: Callable, outputs: list[str]) -> None:
  """SIGKILL at each point in turn on one output, then a rerun; `half_written()` (after
  each kill) -> what a reader would take for finished output but is not (must be
  none); `compare()` -> (what was compared, rows that differ from the uninterrupted
  run). `points` are (Point, its stage's seconds in the uninterrupted run). A kill that
  comes after its stage ended (the uninterrupted run was timed on a busier machine, the
  other test worker's load varies) starts the chain again on fresh `outputs`, with
  every delay drawn from half the range, then a quarter. Records the rows in `world`."""
  for scale in (1.0, 0.5, 0.25):
    rows = []
    for k, (point, span) in enumerate(points, 1):
      landed, delay = killed(cmd_for(), world_lib.REPO, env, point, span, world.rng, scale)
      if not landed:
        break
      bad = half_written()
      rows.append(Row(f'SIGKILL {k}/3: {point.stage}, +{delay:.2f} s', entry, KILLED,
                      f'half-written output: {bad or "none"}', int(bool(bad))))
    if len(rows) == len(points):
      break
    world.notes.append(f'{entry}: kill {k} came after its stage ended (delays from '
                       f'{scale:g} x the range); all three again on fresh outputs.')
    for path in outputs:
      if os.path.isdir(path):
        shutil.rmtree(path)
      elif os.path.exists(path):
        os.remove(path)
  assert len(rows) == len(points), f'{entry}: kill {k} came after its stage ended'
  completes(cmd_for(), world_lib.REPO, env)
  what, differ = compare()
  rows[-1].detail = f'rerun: {what}'
  rows[-1].lost = differ
  world.notes.append(f'{entry}: uninterrupted run {reference_total:.1f} s; stage edges '
                     f'at {", ".join(f"{m:.1f} s" for m in marks)}.')
  world_lib.add(world, rows)


def _listdir(path: str) -> list[str]:
  """os.listdir, [] for a folder that is not (yet, or any more) there: the command
  being watched renames its folders while they are read."""
  try:
    return os.listdir(path)
  except (FileNotFoundError, NotADirectoryError):
    return []


def versions(data_dir: str) -> list[str]:
  """The prepared version folders (complete or `incomplete.*`) under a data_dir."""
  root = os.path.join(data_dir, 'mer_dataset')
  return [os.path.join(root, c, v) for c in _listdir(root)
          for v in _listdir(os.path.join(root, c))
          if os.path.isdir(os.path.join(root, c, v))]


def examples(path: str) -> list:
  """The tf.train.Examples of a TFRecord file, in order."""
  import tensorflow as tf
  return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]


def has(data_dir: str, prefix: str, inner: str = '') -> bool:
  """Whether a version folder starting with `prefix` (holding a file named with
  `inner`) exists."""
  return any(os.path.basename(v).startswith(prefix) and
             (not inner or any(inner in f for f in _listdir(v)))
             for v in versions(data_dir))

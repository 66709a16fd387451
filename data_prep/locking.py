"""One writer at a time for prepared data shared by several processes (a sweep's runs)."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import filelock


@contextlib.contextmanager
def exclusive(path: str, what: str) -> Iterator[None]:
  """Holds an exclusive lock on the file `path`, waiting (and saying so) while another
  process holds it. `what` names the guarded work in that log line."""
  lock = filelock.FileLock(path)
  try:
    lock.acquire(timeout=0)
  except filelock.Timeout:
    logging.warning('another process is %s (lock %s held): waiting', what, path)
    lock.acquire()
  try:
    yield
  finally:
    lock.release()

"""What the command-line tools (launch.py, data_prep.prepare, mer_jax.predict) log:
absl INFO lines of our own modules, not of the libraries; and how they report a
problem with the user's data or config: one line, exit status 1, no traceback
(`user_errors`).

Orbax logs ~30 INFO lines per checkpoint save or restore and TFDS a few per dataset
read, all through absl's logger; with them a demo's log is 60 % library chatter. The
filter keeps every warning and error, and every INFO line from anywhere else.
"""

from __future__ import annotations

import contextlib
import logging as py_logging
import os
from typing import Iterator

from absl import logging

# Path fragments of the libraries whose INFO lines are dropped.
QUIET_LIBRARIES = ('/orbax/', '/tensorflow_datasets/')


class _QuietLibraries(py_logging.Filter):

  def filter(self, record: py_logging.LogRecord) -> bool:
    return (record.levelno >= py_logging.WARNING
            or not any(p in record.pathname for p in QUIET_LIBRARIES))


def quiet_library_logs() -> None:
  """Drops INFO lines of QUIET_LIBRARIES from the absl log (idempotent)."""
  logger = logging.get_absl_logger()
  if not any(isinstance(f, _QuietLibraries) for f in logger.filters):
    logger.addFilter(_QuietLibraries())


# What a missing/malformed release, manifest, workdir or config value raises (ManifestError
# and AudioError are ValueErrors). MER_JAX_TRACEBACK=1 shows the traceback instead.
USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
  """Turns USER_ERRORS into `error: <message>` on stderr and exit status 1."""
  try:
    yield
  except USER_ERRORS as e:
    if os.environ.get('MER_JAX_TRACEBACK'):
      raise
    raise SystemExit(f'error: {e}') from None

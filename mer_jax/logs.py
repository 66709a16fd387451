"""What the command-line tools (launch.py, data_prep.prepare, mer_jax.predict) log:
absl INFO lines of our own modules, not of the libraries.

Orbax logs ~30 INFO lines per checkpoint save or restore and TFDS a few per dataset
read, all through absl's logger; with them a demo's log is 60 % library chatter. The
filter keeps every warning and error, and every INFO line from anywhere else.
"""

from __future__ import annotations

import logging as py_logging

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

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
import sys
from typing import Iterator, Sequence

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
# and AudioError are ValueErrors), and the filesystem's errors about a path the user named
# (permission, read-only, a file where a folder is expected, disk full: an OSError with its
# filename set). MER_JAX_TRACEBACK=1 shows the traceback instead.
USER_ERRORS = (FileNotFoundError, NotADirectoryError, ValueError, OSError)


def user_message(e: BaseException) -> str | None:
  """The one line a USER_ERROR prints (`<path>: <problem>` for a filesystem error), or
  None for an error that is not the user's (an OSError naming no file)."""
  if isinstance(e, OSError) and e.filename is not None and e.strerror:
    return f'{e.filename}: {e.strerror.lower()}'
  if isinstance(e, OSError) and not isinstance(e, (FileNotFoundError, NotADirectoryError)):
    return None  # Not about a path: an internal error; keep its traceback.
  return ' '.join(str(e).split('\n'))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
  """Turns USER_ERRORS into `error: <message>` (one line) on stderr and exit status 1."""
  try:
    yield
  except USER_ERRORS as e:
    message = user_message(e)
    if message is None or os.environ.get('MER_JAX_TRACEBACK'):
      raise
    raise SystemExit(f'error: {message}') from None


def parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parsing (`app.run(main, flags_parser=parse_flags)`) with a config
  override naming a field that does not exist (`--config.train.learnig_rate=...`) as
  one line, exit status 1: ml_collections raises it as an AttributeError, which absl
  would show as a traceback before its 'Did you mean'."""
  from absl import flags
  try:
    return flags.FLAGS(list(argv))
  except flags.Error as e:  # What absl itself reports so (wrong types, missing flags).
    sys.stderr.write(f'FATAL Flags parsing error: {e}\n')
    raise SystemExit(1) from None
  except (AttributeError, KeyError) as e:
    while isinstance(e.args[0] if e.args else None, BaseException):
      e = e.args[0]
    text = str(e.args[0]) if e.args else str(e)
    name, _, hint = text.partition('\n')
    arg = next((a for a in argv[1:] if a.startswith('--config.') and
                name.strip("'") in a.split('=', 1)[0].split('.')), None)
    raise SystemExit(f'error: {arg.split("=", 1)[0] if arg else "config"}: no config '
                     f'field {name}{"; " + hint if hint else ""}') from None

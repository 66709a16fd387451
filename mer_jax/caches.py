"""What mer-jax keeps between processes to start faster, in the user's cache folder (never
in a workdir, which may be read-only): XLA's compiled programs (JAX's persistent
compilation cache) and text encoders' weights converted to Flax.

The folder is `$MER_JAX_CACHE`, else `$XDG_CACHE_HOME/mer_jax` (~/.cache/mer_jax);
`MER_JAX_CACHE=''` caches nothing. Every entry is keyed by what it was made from (XLA:
the program, its compile options and the jax version; an encoder: the hashes of its
files), so a stale entry is never used; deleting the folder only costs time.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from typing import Callable

import numpy as np

# JAX's persistent cache: at most this many bytes (least recently used entries go).
XLA_CACHE_BYTES = 2 << 30


def root() -> str | None:
  """The cache folder, or None when caching is off (`MER_JAX_CACHE=''`)."""
  if 'MER_JAX_CACHE' in os.environ:
    return os.environ['MER_JAX_CACHE'] or None
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'mer_jax')


def folder(kind: str) -> str | None:
  """`<root>/<kind>`, created; None when caching is off or the folder cannot be made
  (logged: the run goes on without the cache)."""
  base = root()
  if base is None:
    return None
  path = os.path.join(base, kind)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    logging.warning('cache folder %s cannot be made (%s): not caching %s', path,
                    e.strerror or e, kind)
    return None
  return path


def enable_compilation_cache() -> str | None:
  """Turns on JAX's persistent compilation cache in `<root>/xla`, every program
  included (a command's many small ones add up), unless the user chose a folder
  (`JAX_COMPILATION_CACHE_DIR` or jax.config). Call before the first compilation.
  Returns the folder in use, or None."""
  import jax
  chosen = jax.config.jax_compilation_cache_dir
  if chosen:
    return chosen
  path = folder('xla')
  if path is None:
    return None
  jax.config.update('jax_compilation_cache_dir', path)
  if 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS' not in os.environ:
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_compilation_cache_max_size', XLA_CACHE_BYTES)
  return path


def write_atomically(path: str, data: bytes) -> bool:
  """Writes `data` to `path` through a temporary file (a killed process leaves no
  partial entry); False, logged, when it cannot be written."""
  tmp = f'{path}.{os.getpid()}.tmp'
  try:
    with open(tmp, 'wb') as f:
      f.write(data)
    os.replace(tmp, path)
    return True
  except OSError as e:
    logging.warning('cache entry %s not written (%s)', path, e.strerror or e)
    if os.path.exists(tmp):
      os.remove(tmp)
    return False


def arrays(kind: str, key: dict, make: Callable[[], dict[str, np.ndarray]]
           ) -> dict[str, np.ndarray]:
  """`make()` (named arrays), kept in `<root>/<kind>/<hash of key>.npz`: computed once,
  then read (e.g. librosa's mel filters, whose import of scipy.signal is most of their
  cost). `key` must say everything the arrays depend on."""
  where = folder(kind)
  path = None
  if where is not None:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = os.path.join(where, f'{digest}.npz')
    if os.path.isfile(path):
      try:
        with np.load(path) as z:
          return {k: z[k] for k in z.files}
      except (OSError, ValueError) as e:  # A damaged entry: made again below.
        logging.warning('cache entry %s unreadable (%s): computing it again', path, e)
  out = make()
  if path is not None:
    buf = io.BytesIO()
    np.savez(buf, **out)
    write_atomically(path, buf.getvalue())
  return out

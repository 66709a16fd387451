"""Checks that the folders and files a user names can be written, made before any work:
without them a read-only workdir fails only after data preparation, and a workdir that
is a file or an `--out` that is a folder fail with the filesystem's bare error.

Each raises a ValueError whose message is one line naming the path and the problem
(`logs.user_errors` prints it).
"""

from __future__ import annotations

import os
import tempfile


def _existing_ancestor(path: str) -> str:
  """The nearest of `path` and its parents that exists."""
  path = os.path.abspath(path)
  while not os.path.lexists(path):
    path = os.path.dirname(path)
  return path


def writable_dir(path: str, what: str) -> None:
  """Creates folder `path` (and its parents) if needed and checks that a file can be
  created in it. `what` names the folder's role in messages ('workdir')."""
  anc = _existing_ancestor(path)
  if not os.path.isdir(anc):
    where = 'is a file' if anc == os.path.abspath(path) else f'lies under {anc}, a file'
    raise ValueError(f'{path}: {where}, not a folder ({what})')
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):  # Permission bits alone miss read-only mounts.
      pass
  except OSError as e:
    raise ValueError(f'{path}: cannot write in this folder ({what}): '
                     f'{(e.strerror or str(e)).lower()}') from None


def writable_file(path: str, what: str) -> None:
  """Checks that file `path` can be written (created, or appended to if it exists);
  creates its folder if needed, never the file."""
  if os.path.isdir(path):
    raise ValueError(f'{path}: is a folder, not a file ({what})')
  anc = _existing_ancestor(os.path.dirname(os.path.abspath(path)))
  if not os.path.isdir(anc):
    raise ValueError(f'{path}: lies under {anc}, a file, not a folder ({what})')
  writable_dir(os.path.dirname(os.path.abspath(path)), f'the folder of {what}')
  if os.path.exists(path) and not os.access(path, os.W_OK):
    raise ValueError(f'{path}: cannot write this file ({what}): permission denied')

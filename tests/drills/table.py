"""The drills' table: one row per (input, entry point), how the entry point took it,
and `drills.md`.

Entry points run in-process through the same wrapper as their command lines
(`logs.user_errors`: launch.py's `jobs.run`, data_prep.prepare's `prepare`,
mer_jax.predict's `run`), so a user error is a SystemExit('error: ...') and anything
else that escapes is a traceback the user would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
from typing import Any, Callable

from mer_jax import logs

CLEAR, SKIP, ACCEPTED, TRACEBACK = 'clear error', 'listed skip', 'accepted', 'TRACEBACK'
KILLED = 'killed, rerun equal'  # A kill drill's row.


@dataclasses.dataclass
class Row:
  input: str
  entry: str  # The command.
  outcome: str  # CLEAR, SKIP, ACCEPTED, KILLED or TRACEBACK.
  detail: str = ''  # The message, the skip reason, or what was checked.
  lost: int = 0  # Input rows neither written nor listed as skipped.
  traceback: int = 0


@dataclasses.dataclass
class Call:
  outcome: str  # CLEAR, ACCEPTED or TRACEBACK.
  detail: str
  value: Any = None
  stdout: str = ''

  @property
  def traceback(self) -> int:
    return int(self.outcome == TRACEBACK)


def call(fn: Callable[[], Any]) -> Call:
  """Runs `fn` as a command line runs its work: under `logs.user_errors`."""
  out = io.StringIO()
  try:
    with contextlib.redirect_stdout(out), logs.user_errors():
      value = fn()
  except SystemExit as e:
    msg = str(e.code)
    one_line = msg.startswith('error: ') and '\n' not in msg
    return Call(CLEAR if one_line else TRACEBACK, msg, stdout=out.getvalue())
  except Exception as e:  # noqa: BLE001 -- what the drills look for.
    return Call(TRACEBACK, f'{type(e).__name__}: {e}'[:300], stdout=out.getvalue())
  return Call(ACCEPTED, '', value, out.getvalue())


def command(args: list[str], cwd: str, env: dict | None = None) -> Call:
  """A command line in a subprocess: exit status 1 with a last line `error: ...` or
  absl's `FATAL Flags parsing error` and no 'Traceback' is a clear error."""
  done = subprocess.run(args, cwd=cwd, capture_output=True, text=True,
                        env={**os.environ, 'HF_HUB_OFFLINE': '1', **(env or {})})
  lines = done.stderr.strip().splitlines()
  if 'Traceback' in done.stderr:
    return Call(TRACEBACK, done.stderr[-300:])
  if done.returncode == 0:
    return Call(ACCEPTED, '', stdout=done.stdout)
  errors = [l for l in lines if l.startswith(('error: ', 'FATAL Flags parsing error'))]
  if done.returncode == 1 and errors:
    return Call(CLEAR, errors[-1])
  return Call(TRACEBACK, f'exit {done.returncode}: {done.stderr[-300:]}')


def markdown(rows: list[Row], notes: list[str]) -> str:
  """drills.md: totals, then the table."""
  n_lost = sum(r.lost for r in rows)
  n_tb = sum(r.traceback for r in rows)
  counts = {k: sum(r.outcome == k for r in rows)
            for k in (CLEAR, SKIP, ACCEPTED, KILLED, TRACEBACK)}
  out = ['# Reliability drills', '',
         f'{len(rows)} rows: ' + ', '.join(f'{v} {k}' for k, v in counts.items()) +
         f'. **Lost: {n_lost}. Tracebacks: {n_tb}.**', '', *notes, '',
         '| input | entry point | outcome | detail | lost | traceback |',
         '|---|---|---|---|---|---|']
  for r in rows:
    detail = r.detail.replace('|', '\\|').replace('\n', ' ')
    if len(detail) > 160:
      detail = detail[:157] + '...'
    out.append(f'| {r.input} | {r.entry} | {r.outcome} | {detail} | {r.lost} | '
               f'{r.traceback} |')
  return '\n'.join(out) + '\n'


@contextlib.contextmanager
def read_only(path: str):
  """Makes folder `path` read-only for this process; yields whether writes now fail.
  Permission bits do not bind root, so as root the folder is made immutable
  (`chattr +i`) where the filesystem allows it."""
  def writable() -> bool:
    probe = os.path.join(path, '.probe')
    try:
      with open(probe, 'w'):
        pass
    except OSError:
      return False
    os.remove(probe)
    return True

  mode = os.stat(path).st_mode
  os.chmod(path, 0o555)
  immutable = False
  if writable():
    immutable = subprocess.run(['chattr', '+i', path], capture_output=True).returncode == 0
  try:
    yield not writable()
  finally:
    if immutable:
      subprocess.run(['chattr', '-i', path], check=True)
    os.chmod(path, mode)

"""One writer at a time: `exclusive` waits for another holder of the lock file, says so."""

import fcntl
import logging
import threading
import time

from data_prep import locking


def test_waits_while_another_process_holds_the_lock(tmp_path, caplog):
  path = str(tmp_path / 'x.lock')
  entered = []

  def worker():
    with locking.exclusive(path, 'writing x'):
      entered.append(time.monotonic())

  with open(path, 'a') as f:  # Another open file description: as another process.
    fcntl.flock(f, fcntl.LOCK_EX)
    with caplog.at_level(logging.WARNING):
      t = threading.Thread(target=worker)
      t.start()
      t.join(0.5)
      assert t.is_alive() and not entered
      released = time.monotonic()
  t.join(10)
  assert not t.is_alive() and entered and entered[0] >= released
  assert any('another process is writing x' in r.getMessage() and path in r.getMessage()
             for r in caplog.records)


def test_free_lock_is_taken_at_once_and_released(tmp_path, caplog):
  path = str(tmp_path / 'x.lock')
  with caplog.at_level(logging.WARNING):
    with locking.exclusive(path, 'writing x'):
      with open(path, 'a') as f:  # Held: a second taker is refused.
        try:
          fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
          held = False
        except BlockingIOError:
          held = True
    assert held
    with open(path, 'a') as f:  # Released at the end of the block.
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  assert not caplog.records

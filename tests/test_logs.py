"""The command-line tools' log keeps our INFO lines and every warning, not library chatter."""

import logging as py_logging

import numpy as np
import pytest
from absl import logging

from mer_jax import logs


@pytest.fixture
def quiet(caplog):
  logger = logging.get_absl_logger()
  before, level = list(logger.filters), logging.get_verbosity()
  # A command run in-process earlier (the drills) may have added the filter already.
  logger.filters[:] = [f for f in before if not isinstance(f, logs._QuietLibraries)]
  n = len(logger.filters)
  logging.set_verbosity(logging.INFO)
  logs.quiet_library_logs()
  logs.quiet_library_logs()  # Idempotent: one filter.
  assert len(logger.filters) == n + 1
  caplog.set_level(py_logging.INFO)
  yield caplog
  logger.filters[:] = before
  logging.set_verbosity(level)


def test_orbax_save_and_restore_log_no_info_lines(quiet, tmp_path):
  import orbax.checkpoint as ocp
  tree = {'w': np.arange(6, dtype=np.float32).reshape(2, 3)}
  with ocp.CheckpointManager(str(tmp_path / 'ckpt')) as mngr:
    mngr.save(1, args=ocp.args.StandardSave(tree))
    mngr.wait_until_finished()
    got = mngr.restore(1, args=ocp.args.StandardRestore(tree))
  np.testing.assert_array_equal(got['w'], tree['w'])
  logging.info('epoch 1/1: our own line')
  paths = [r.pathname for r in quiet.records]
  assert not [p for p in paths if '/orbax/' in p]
  assert 'epoch 1/1: our own line' in quiet.text


@pytest.mark.parametrize('path,level,kept', [
    ('/site-packages/orbax/checkpoint/future.py', py_logging.INFO, False),
    ('/site-packages/tensorflow_datasets/core/reader.py', py_logging.INFO, False),
    ('/site-packages/orbax/checkpoint/future.py', py_logging.WARNING, True),
    ('/site-packages/tensorflow_datasets/core/reader.py', py_logging.ERROR, True),
    ('/repo/mer_jax/train.py', py_logging.INFO, True),
    ('/site-packages/clu/metric_writers/logging_writer.py', py_logging.INFO, True),
])
def test_filter_drops_library_info_only(quiet, path, level, kept):
  logger = logging.get_absl_logger()
  record = logger.makeRecord('absl', level, path, 1, 'message', (), None)
  assert bool(logger.filter(record)) == kept


@pytest.mark.parametrize('command', [
    ['launch.py', '--config=configs/exp1.py', '--workdir={tmp}/w'],
    ['-m', 'data_prep.prepare', '--config=configs/exp1.py'],
    ['-m', 'mer_jax.predict', '--workdir={tmp}/no_run', '--audio={tmp}/song.wav'],
])
def test_entry_points_report_user_errors_in_one_line(tmp_path, command):
  """A missing release (or run): the message, exit status 1, no traceback."""
  import os
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  args = [a.format(tmp=tmp_path) for a in command]
  if 'predict' not in command[1]:
    args += [f'--config.data.root={tmp_path}/missing',
             f'--config.data.data_dir={tmp_path}/prepared']
  done = subprocess.run([sys.executable, *args], cwd=repo, capture_output=True,
                        text=True, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
  assert done.returncode == 1, done.stderr[-2000:]
  assert 'Traceback' not in done.stderr, done.stderr[-2000:]
  last = done.stderr.strip().splitlines()[-1]
  want = ('no_run' if 'predict' in command[1]
          else 'MERGE bimodal_complete not found')
  assert last.startswith('error: ') and want in last, last


@pytest.mark.parametrize('command', [
    ['launch.py', '--config=configs/default.py', '--workdir={tmp}/w',
     '--config.data.source=manifest', '--config.data.manifest={tmp}/empty.csv',
     '--config.data.data_dir={tmp}/prepared'],
    ['-m', 'data_prep.prepare', '--config=configs/default.py',
     '--config.data.source=manifest', '--config.data.manifest={tmp}/empty.csv',
     '--config.data.data_dir={tmp}/prepared'],
])
def test_an_empty_manifest_is_one_line_naming_it(tmp_path, command):
  """A 0-byte manifest: `<path>: empty file (0 bytes) ...`, exit 1, no traceback (was a
  pandas EmptyDataError traceback naming no file)."""
  import os
  import subprocess
  import sys
  (tmp_path / 'empty.csv').write_bytes(b'')
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  args = [a.format(tmp=tmp_path) for a in command]
  done = subprocess.run([sys.executable, *args], cwd=repo, capture_output=True,
                        text=True, env={**os.environ, 'HF_HUB_OFFLINE': '1'})
  assert done.returncode == 1, done.stderr[-2000:]
  assert 'Traceback' not in done.stderr, done.stderr[-2000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and 'empty.csv: empty file (0 bytes)' in last, last


def test_user_message_is_one_line_naming_the_path():
  """Filesystem errors the user's paths cause print `<path>: <problem>`; an OSError about
  no path is internal (None: its traceback is kept)."""
  assert logs.user_message(PermissionError(13, 'Permission denied', '/x/y')) == (
      '/x/y: permission denied')
  assert logs.user_message(IsADirectoryError(21, 'Is a directory', 'out.csv')) == (
      'out.csv: is a directory')
  assert logs.user_message(OSError(28, 'No space left on device', '/d/f')) == (
      '/d/f: no space left on device')
  assert logs.user_message(OSError('socket closed')) is None
  assert logs.user_message(FileNotFoundError('a.csv not found')) == 'a.csv not found'
  assert logs.user_message(ValueError('line one\nline two')) == 'line one line two'
  with pytest.raises(SystemExit, match='^error: /x/y: permission denied$'):
    with logs.user_errors():
      raise PermissionError(13, 'Permission denied', '/x/y')
  with pytest.raises(SystemExit, match='^error: /no/such/file: no such file or directory$'):
    with logs.user_errors():
      open('/no/such/file')  # noqa: SIM115 -- Python's own error, with its filename.
  with pytest.raises(OSError, match='socket closed'):  # Internal: raised as it is.
    with logs.user_errors():
      raise OSError('socket closed')

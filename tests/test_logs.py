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
  logging.set_verbosity(logging.INFO)
  logs.quiet_library_logs()
  logs.quiet_library_logs()  # Idempotent: one filter.
  assert len(logger.filters) == len(before) + 1
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

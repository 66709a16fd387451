"""Shared fixtures: a tiny generated dataset and a tiny config (testing only)."""

import atexit
import os
import shutil
import tempfile


def _session_folder(variable: str, prefix: str) -> None:
  """Sets `variable` to a new temporary folder unless it is set, and removes the folder
  when this process (pytest's, whose workers and subprocesses inherit the variable)
  exits: a session's caches took ~130 MB of /tmp, and they were never removed."""
  if variable not in os.environ:
    os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, os.environ[variable], ignore_errors=True)


os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# One persistent XLA compilation cache per test session (subprocesses inherit it): runs
# that differ only in seed or workdir compile once.
_session_folder('JAX_COMPILATION_CACHE_DIR', 'jax-cache-')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
# mer_jax.caches (converted encoder weights, mel filters): this session's own folder, not
# the user's ~/.cache/mer_jax.
_session_folder('MER_JAX_CACHE', 'mer-jax-cache-')
# Tiny models on tiny data: XLA's optimisation passes cost more than they save (flax's
# examples/imagenet tests do the same). Every comparison in the suite is between runs
# under the same setting, or against another framework within a tolerance.
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')

import pytest  # noqa: E402


# Tests that run as one unit on one worker (node id prefix -> unit): tests/drills/, so
# that one drills.md gets every row; the users of `dp_runs`, so that one worker computes
# it while the other goes on (instead of waiting for the lock); tests/test_exp3.py, so
# that one worker trains `exp3_run` for both (sent to both at once, each trained its own).
UNITS = {'tests/drills/': 'drills', 'tests/test_exp3.py': 'exp3',
         'tests/test_train.py::test_two_devices_match_one': 'dp_runs',
         'tests/test_siamese.py::test_two_devices_give_the_same_siamese_loss': 'dp_runs'}


def pytest_xdist_make_scheduler(config, log):
  """pytest-xdist's 'load' scheduling (pytest.ini: two workers), but each of UNITS on
  one worker. (xdist's own loadgroup marks do not take with pytest 9.2: they rename
  `item._nodeid`, which no longer sets the node id.)"""
  from xdist.scheduler import LoadScopeScheduling

  class Units(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
      return next((unit for prefix, unit in UNITS.items() if nodeid.startswith(prefix)),
                  nodeid)

  return Units(config, log)


@pytest.fixture
def own_tempdir(tmp_path, monkeypatch):
  """An empty folder that this process's `tempfile` uses for the test: what a library
  leaves in the temporary folder is then visible (`os.listdir`)."""
  folder = tmp_path / 'tmp'
  folder.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(folder))
  return folder


@pytest.fixture
def xla_optimized():
  """XLA's optimisations on for one test. Under jax_disable_most_optimizations the
  jitted fine-tuned musicnn train step gives a NaN loss on the tiny data where the same
  step op by op (jax_debug_nans' replay) and the optimised jit give finite values: an
  XLA:CPU problem of its unoptimised pipeline, not of the model."""
  import jax
  jax.config.update('jax_disable_most_optimizations', False)
  yield
  jax.config.update('jax_disable_most_optimizations',
                    os.environ.get('JAX_DISABLE_MOST_OPTIMIZATIONS') == '1')


def shared_dir(tmp_path_factory, worker_id: str):
  """A folder this test session's xdist workers share (the session's own base temp
  folder without xdist), for results one worker computes under a lock and all read."""
  base = tmp_path_factory.getbasetemp()
  return base if worker_id == 'master' else base.parent


@pytest.fixture(scope='session')
def dp_runs(tmp_path_factory, worker_id):
  """(devices, mode) -> tests/dp_steps.py's arrays (three train steps + one eval step of
  the regressor and both Siamese losses) on 1 or 2 CPU devices: one subprocess (two
  CPU devices: a one-device mesh, then both) per session, whichever worker asks first."""
  import subprocess
  import sys

  import numpy as np
  from filelock import FileLock
  folder = shared_dir(tmp_path_factory, worker_id)
  modes = ('fusion', 'infonce', 'pairwise')
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def get(devices: int, mode: str) -> dict:
    prefix = str(folder / 'dp')
    with FileLock(prefix + '.lock'):
      if not os.path.exists(f'{prefix}2_{modes[-1]}.npz'):
        env = {**os.environ, 'JAX_PLATFORMS': 'cpu',
               'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
        done = subprocess.run([sys.executable, os.path.join(repo, 'tests', 'dp_steps.py'),
                               prefix, *modes], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(f'{prefix}{devices}_{mode}.npz'))

  return get


def tiny_config(tmp_root: str):
  """configs/tiny.py with its data under `tmp_root`."""
  from configs import tiny
  config = tiny.get_config()
  config.data.root = os.path.join(tmp_root, 'songs')
  config.data.data_dir = os.path.join(tmp_root, 'prepared')
  return config


@pytest.fixture(scope='session')
def tiny_root(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tiny'))


@pytest.fixture(scope='session')
def tiny_prepared(tiny_root):
  """(config, builder) of the tiny synthetic dataset, prepared once per session."""
  from data_prep import prepare
  config = tiny_config(tiny_root)
  return config, prepare.prepare(config)


@pytest.fixture(scope='session')
def tiny_bert_dir(tmp_path_factory):
  """A local BERT directory (random 2-layer, 32-d) with MiniLM's vocabulary: stands in
  for a user's `bert-base-uncased` download."""
  return make_bert_dir(str(tmp_path_factory.mktemp('tiny_bert')), positions=64)


def make_bert_dir(path: str, positions: int) -> str:
  """Writes tiny_bert_dir's BERT (with `positions` position embeddings) into `path`."""
  import shutil

  from transformers import BertConfig, FlaxBertModel
  from mer_jax import tokenization
  FlaxBertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=positions),
                seed=0).save_pretrained(path)
  for f in ('vocab.txt', 'tokenizer_config.json'):
    shutil.copy(os.path.join(tokenization.encoder_dir('minilm'), f), path)
  return path


@pytest.fixture(scope='session')
def exp3_run(tiny_prepared, tiny_root, tmp_path_factory, worker_id):
  """(config, workdir, summary) of Experiment 3 on the tiny dataset: exp1/, siamese/,
  siamese_folds/, gated/ and report/ under workdir (also the notebooks' demo runs).

  The tests only read it, so the first xdist worker to ask trains it into the shared
  folder and the other reads it there (its runs name the first worker's copy of the
  same generated songs). A worker that asks while the other is still training trains
  its own copy rather than wait."""
  import pickle

  from filelock import FileLock, Timeout

  from mer_jax.jobs import exp3
  config = tiny_config(tiny_root)
  config.job = 'exp3'
  config.train.num_epochs = 3
  config.siamese.embed_dim = 8
  config.siamese.proj_hidden = 16
  config.exp3.siamese_batch_size = 8
  config.exp3.siamese_num_epochs = 3
  config.exp3.num_bins = 3
  config.exp3.congruence_folds = 2  # Cross-fitted gate congruence, two fold models.
  shared = shared_dir(tmp_path_factory, worker_id) / 'exp3'
  lock = FileLock(str(shared) + '.lock')
  try:
    lock.acquire(timeout=0)
  except Timeout:
    workdir = str(tmp_path_factory.mktemp('exp3'))
    return config, workdir, exp3.run(config, workdir).summary
  try:
    done = shared / 'summary.pickle'
    if not done.exists():
      summary = exp3.run(config, str(shared)).summary
      done.write_bytes(pickle.dumps(summary))
    return config, str(shared), pickle.loads(done.read_bytes())
  finally:
    lock.release()


@pytest.fixture(scope='session')
def tiny_run(tiny_prepared, exp3_run):
  """(config, builder, workdir, Predictor) of a tiny fusion run (Exp 3's Exp 1 run)."""
  config, workdir, _ = exp3_run
  workdir = os.path.join(workdir, 'exp1')
  from mer_jax import predict
  return config, tiny_prepared[1], workdir, predict.Predictor.from_workdir(workdir)


def tiny_songs(config):
  """The tiny dataset's manifest indexed by song_id, with absolute audio paths and the
  lyrics text."""
  import pandas as pd
  df = pd.read_csv(os.path.join(config.data.root, 'manifest.csv'))
  df['audio'] = [os.path.join(config.data.root, p) for p in df.audio_path]
  df['lyrics'] = [open(os.path.join(config.data.root, p)).read() for p in df.lyrics_path]
  return df.set_index('song_id')

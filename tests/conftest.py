"""Shared fixtures: a tiny generated dataset and a tiny config (testing only)."""

import os
import tempfile

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# One persistent XLA compilation cache per test session (subprocesses inherit it): runs
# that differ only in seed or workdir compile once.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', tempfile.mkdtemp(prefix='jax-cache-'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')

import pytest  # noqa: E402


def pytest_xdist_make_scheduler(config, log):
  """pytest-xdist's 'load' scheduling (pytest.ini: two workers), but tests/drills/ as one
  unit on one worker, so that one drills.md gets every row. (xdist's own loadgroup
  marks do not take with pytest 9.2: they rename `item._nodeid`, which no longer sets
  the node id.)"""
  from xdist.scheduler import LoadScopeScheduling

  class DrillsTogether(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
      return 'tests/drills' if nodeid.startswith('tests/drills/') else nodeid

  return DrillsTogether(config, log)


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
  import shutil

  from transformers import BertConfig, FlaxBertModel
  from mer_jax import tokenization
  path = tmp_path_factory.mktemp('tiny_bert')
  FlaxBertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=64),
                seed=0).save_pretrained(path)
  for f in ('vocab.txt', 'tokenizer_config.json'):
    shutil.copy(os.path.join(tokenization.encoder_dir('minilm'), f), path)
  return str(path)


@pytest.fixture(scope='session')
def exp3_run(tiny_prepared, tiny_root, tmp_path_factory):
  """(config, workdir, summary) of Experiment 3 on the tiny dataset: exp1/, siamese/,
  siamese_folds/, gated/ and report/ under workdir (also the notebooks' demo runs)."""
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
  workdir = str(tmp_path_factory.mktemp('exp3'))
  return config, workdir, exp3.run(config, workdir).summary


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

"""Shared fixtures: a tiny generated dataset and a tiny config (testing only)."""

import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # noqa: E402


def tiny_config(tmp_root: str):
  """configs/demo.py shrunk so that preparing + training takes seconds (testing only)."""
  from configs import demo
  config = demo.get_config()
  config.data.root = os.path.join(tmp_root, 'songs')
  config.data.data_dir = os.path.join(tmp_root, 'prepared')
  config.data.num_workers = 1
  config.data.synthetic.num_songs = 40
  config.data.synthetic.duration_s = 3.0
  config.audio.num_frames = 128
  config.text.max_length = 48
  config.model.widths = (4, 8, 8, 16)
  config.model.classifier_hidden = 16
  config.model.audio_dim = 8
  config.model.fusion_hidden = 16
  config.train.batch_size = 8
  config.train.eval_batch_size = 8
  config.train.num_epochs = 6
  config.train.learning_rate = 3e-3
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

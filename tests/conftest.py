"""Shared fixtures: a tiny generated dataset and a tiny config (testing only)."""

import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # noqa: E402


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

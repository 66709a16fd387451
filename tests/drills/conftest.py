"""The drills' fixtures: the generated inputs (once per session, drills.md written at its
end), the table prepared, the one-step model trained on it."""

import os
import types

import numpy as np
import pytest

from mer_jax import runs
from tests.drills import inputs, table, world as world_lib


@pytest.fixture(scope='session')
def world(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('drills'))
  rng = np.random.default_rng(world_lib.SEED)
  good = inputs.good_lyrics(root)
  audio = inputs.audio_inputs(os.path.join(root, 'audio'), rng)
  lyrics = inputs.lyrics_inputs(os.path.join(root, 'lyrics'), rng)
  assert {i.name for i in audio + lyrics} == set(world_lib.EXPECTED)
  songs = inputs.good_songs(os.path.join(root, 'good'), 12, good)
  manifest = inputs.manifest_of(os.path.join(root, 'table.csv'), audio + lyrics, songs, good)
  w = types.SimpleNamespace(root=root, rng=rng, good=good, audio=audio, lyrics=lyrics,
                            songs=songs, config=world_lib.config_for(root, manifest),
                            rows=[], notes=[])
  yield w
  print(f'\ndrills: {world_lib.write_report(w)}')


@pytest.fixture(scope='session')
def prepared(world):
  """data_prep.prepare on the table manifest: its Call (value: the builder)."""
  from data_prep import prepare
  return table.call(lambda: prepare.prepare(world.config))


@pytest.fixture(scope='session')
def trained(world, prepared):
  """(launch.py's Call, config, workdir): one training step on the prepared table (the
  batch is every training song)."""
  from mer_jax import jobs
  assert prepared.outcome == table.ACCEPTED, prepared.detail
  n_train = prepared.value.info.splits['train'].num_examples
  config = runs.derive(world.config, train__num_epochs=1, train__batch_size=n_train)
  workdir = os.path.join(world.root, 'run')
  return table.call(lambda: jobs.run(config, workdir)), config, workdir


@pytest.fixture
def loaded_once(trained, monkeypatch):
  """The run's predictor is loaded once: each command otherwise reloads it (1 s)."""
  from mer_jax import predict
  loaded = predict.Predictor.from_workdir(trained[2])
  monkeypatch.setattr(predict.Predictor, 'from_workdir',
                      staticmethod(lambda workdir, batch_size=8: loaded))

"""The drills' shared state: the generated inputs, the rows so far, drills.md; and the
helpers every drill uses (the tiny config on a manifest, recording rows, running
mer_jax.predict's command line in-process)."""

from __future__ import annotations

import os

import numpy as np

from tests.conftest import tiny_config
from tests.drills import table
from tests.drills.table import ACCEPTED, CLEAR, SKIP

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Fresh inputs every session; MER_DRILLS_SEED=<n> repeats one (drills.md names it).
SEED = int(os.environ.get('MER_DRILLS_SEED') or np.random.SeedSequence().entropy % 2**31)

# What every audio/lyrics input must get: (outcome, text of the reason). Prepare lists
# the skip; one-song prediction fails with the same reason; folder prediction lists it
# in the errors CSV.
EXPECTED = {
    'zero bytes': (SKIP, 'empty file (0 bytes)'),
    'random bytes': (SKIP, 'not an audio file (unrecognised format)'),
    'truncated MP3 (first 30 %)': (SKIP, 'its header declares (a truncated'),
    'NaN samples (whole file)': (SKIP, 'NaN or infinite samples (the first at 0.000 s)'),
    'NaN sample (one)': (SKIP, 'NaN or infinite samples (the first at'),
    'inf samples (whole file)': (SKIP, 'NaN or infinite samples (the first at 0.000 s)'),
    'inf sample (one)': (SKIP, 'NaN or infinite samples (the first at'),
    '0.05 s': (SKIP, 'audio shorter than 1 s (0.05 s)'),
    '30 s of digital silence': (SKIP, 'audio is silent (peak amplitude 0)'),
    '6 channels': (ACCEPTED, ''),
    '8 kHz': (ACCEPTED, ''),
    '192 kHz': (ACCEPTED, ''),
    '24-bit FLAC': (ACCEPTED, ''),
    'a directory named like a song': (SKIP, 'is a directory, not an audio file'),
    'path with spaces and non-ASCII': (ACCEPTED, ''),
    'a symlink loop': (SKIP, 'symbolic link that leads nowhere'),
    'lyrics: binary': (SKIP, 'lyrics not UTF-8'),
    'lyrics: Latin-1': (SKIP, 'lyrics not UTF-8'),
    'lyrics: UTF-8 with BOM': (ACCEPTED, ''),
    'lyrics: CRLF line ends': (ACCEPTED, ''),
    'lyrics: empty': (SKIP, 'lyrics empty'),
    'lyrics: whitespace only': (SKIP, 'lyrics empty'),
    'lyrics: 1 MB': (ACCEPTED, ''),
    'lyrics: emoji and RTL text': (ACCEPTED, ''),
}


def config_for(root, manifest, data_dir=None):
  config = tiny_config(root)
  config.data.name = 'drills'
  config.data.source = 'manifest'
  config.data.manifest = manifest
  config.data.data_dir = data_dir or os.path.join(root, 'prepared')
  return config


def add(world, rows):
  """Records rows; fails on anything lost or a traceback."""
  world.rows.extend(rows)
  bad = [r for r in rows if r.lost or r.traceback]
  assert not bad, '\n'.join(map(str, bad))


def check_expected(rows):
  for r in rows:
    outcome, text = EXPECTED[r.input]
    if r.entry.startswith('mer_jax.predict --audio='):  # One song: a skip is an error.
      outcome = CLEAR if outcome == SKIP else outcome
    assert r.outcome == outcome and text in r.detail, r


def row_id(i: int) -> str:
  """The song id of audio/lyrics input i in the table manifest."""
  return f'row{i:02d}'


def predict(workdir, *args) -> table.Call:
  """mer_jax.predict's command line, parsed and run in-process."""
  from absl import flags
  from mer_jax import predict as predict_lib
  fv = flags.FlagValues()
  predict_lib._define_flags(fv)
  fv(['predict', f'--workdir={workdir}', *args])
  return table.call(lambda: predict_lib.run(fv))


def write_report(world) -> str:
  """drills.md of the rows so far: $MER_DRILLS_REPORT, else the drills' folder."""
  path = os.environ.get('MER_DRILLS_REPORT') or os.path.join(world.root, 'drills.md')
  notes = [f'Inputs generated with seed {SEED} (MER_DRILLS_SEED={SEED} repeats them).',
           *world.notes]
  for r in world.rows:  # The temporary folder's name says nothing.
    r.detail = r.detail.replace(world.root + os.sep, '')
  with open(path, 'w', encoding='utf-8') as f:
    f.write(table.markdown(world.rows, notes))
  return path

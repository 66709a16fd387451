"""Saved run configs: the resume check, and configs saved by older versions."""

import pytest

from mer_jax import run_config
from tests.conftest import tiny_config


def test_resume_check_treats_fields_newer_than_the_run_as_their_old_value():
  config = tiny_config('/unused')
  saved = run_config.flat(config)
  del saved['siamese.margin']  # A run saved before the field existed.
  run_config.check_same(saved, config, 'old')
  config.siamese.margin = 0.3
  with pytest.raises(ValueError, match='siamese.margin'):
    run_config.check_same(saved, config, 'old')


def test_a_config_saved_before_the_model_sections_upgrades_to_today():
  """The flat config a run of the old layout saved (model.widths, model.audio_dim, ...,
  no fields added since) maps to today's config, field by field."""
  config = tiny_config('/unused')
  # Runs of that layout generated the demo with one noise std for every song.
  config.data.synthetic.heteroscedastic = False
  config.text.trim_padding = False  # ... and a fine-tuned tower read every token column.
  now = run_config.flat(config)
  old_names = {new: old for old, new in run_config.RENAMED.items()}
  saved = {old_names.get(k, k): v for k, v in now.items() if k not in run_config.ADDED}
  assert saved['model.audio_dim'] == config.model.audio.out_dim == 8
  assert saved['model.fusion_hidden'] == config.model.fusion.hidden
  assert run_config.upgrade_flat(saved) == now
  run_config.check_same(saved, config, 'old')
  config.model.audio.out_dim = 16
  with pytest.raises(ValueError, match='model.audio.out_dim'):
    run_config.check_same(saved, config, 'old')
  nested = run_config.upgrade(run_config.unflatten(saved))
  assert nested.model.audio.widths == list(config.model.audio.widths)
  assert nested.model.fusion.congruence_gate is False


def test_synthetic_fields_matter_only_to_synthetic_runs():
  """A run saved before data.synthetic.heteroscedastic existed behaved as False: a
  synthetic run with today's True is another run; a run on a real release resumes."""
  config = tiny_config('/unused')
  saved = run_config.flat(config)
  del saved['data.synthetic.heteroscedastic']
  with pytest.raises(ValueError, match='data.synthetic.heteroscedastic'):
    run_config.check_same(saved, config, 'old')
  config.data.source = saved['data.source'] = 'pmemo'
  run_config.check_same(saved, config, 'old')
  config.data.synthetic.num_songs = 10  # Unused by a PMEmo run.
  run_config.check_same(saved, config, 'old')
  config.data.split_seed = 3
  with pytest.raises(ValueError, match='data.split_seed'):
    run_config.check_same(saved, config, 'old')

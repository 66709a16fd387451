"""Every config file builds its model and runs one training step (tiny overrides)."""

import glob
import importlib
import os

import jax
import numpy as np
import pytest

from mer_jax import bert, tasks, train

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(
    os.path.join(os.path.dirname(__file__), '..', 'configs', '*.py'))
    if not p.endswith('__init__.py'))


def test_all_config_files_found():
  assert {'default', 'demo', 'tiny', 'model1', 'model2', 'model3', 'model4',
          'model5'} <= set(CONFIGS)


@pytest.fixture(scope='module')
def tiny_bert(tiny_bert_dir):
  """A fine-tuned text tower's (BertConfig, params), shrunk as the audio tower is: a
  random 2-layer, 32-d BERT with MiniLM's vocabulary (MiniLM itself: 20 s of compiling
  per fine-tuned config; its numbers are checked against PyTorch in test_bert.py)."""
  return bert.load_bert(tiny_bert_dir)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_and_trains_one_step(name, tiny_bert):
  config = importlib.import_module(f'configs.{name}').get_config()
  _one_step(config, tiny_bert)
  if config.job == 'exp3':  # Its Siamese run too.
    from mer_jax.jobs import exp3
    _one_step(exp3.siamese_config(config), tiny_bert)


def _one_step(config, text_encoder):
  # Every field is commented and overridable: keep the structure, shrink the sizes.
  config.model.audio.widths = (4, 4, 4, 4)
  config.model.audio.hidden = 8
  config.text.max_length = 12
  config.text.warmup_steps = 1
  batch_size, frames = 2, 32
  keys = tasks.input_keys(config)
  rng = np.random.default_rng()
  batch = {'mel': rng.uniform(-80, 0, (batch_size, config.audio.n_mels, frames)),
           'lyrics_emb': rng.normal(size=(batch_size, 384)),
           'token_ids': rng.integers(1000, 2000, (batch_size, 12)),
           'attention_mask': np.ones((batch_size, 12)),
           'targets': rng.uniform(size=(batch_size, 2)), 'mask': np.ones(batch_size),
           'target_std': rng.uniform(0.02, 0.2, (batch_size, 2)),
           'quadrant': rng.integers(0, 4, batch_size),
           'congruence': rng.uniform(-1, 1, batch_size),
           # Precomputed audio embeddings (frozen musicnn: 200-d), the fine-tuned
           # musicnn's input.
           'audio_emb': rng.normal(size=(batch_size, 200)),
           'musicnn_mel': rng.uniform(0, 4, (batch_size, 187, 96)),
           'musicnn_frames': np.full(batch_size, 187)}
  batch = {k: v.astype(np.int32 if k in ('token_ids', 'attention_mask', 'quadrant',
                                       'musicnn_frames')
                       else np.float32) for k, v in batch.items()}
  model = tasks.create_model(config, text_encoder[0])
  state = train.create_train_state(config, model, jax.random.key(0),
                                   {k: batch[k] for k in keys}, 10, text_encoder[1])
  inputs = {'inputs': {k: batch[k] for k in keys}, 'targets': batch['targets'],
            'target_std': batch['target_std'], 'mask': batch['mask'],
            'quadrant': batch['quadrant']}
  loss_fn = tasks.get_task(config).loss_fn
  new, m = jax.jit(lambda s, b, r: train.train_step(s, b, r, loss_fn))(
      state, inputs, jax.random.key(1))
  assert np.isfinite(float(m.loss.compute()))
  assert int(new.step) == 1
  changed = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))),
                         state.params, new.params)
  assert any(jax.tree.leaves(changed))
  fine_tuned = config.text.trainable and (config.model.modality != 'audio'
                                          or config.task == 'siamese')
  assert ('text' in state.params) == fine_tuned
  if fine_tuned:  # The unfrozen tower is trained.
    assert any(jax.tree.leaves(changed['text']))

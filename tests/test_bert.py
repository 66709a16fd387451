"""The Flax lyrics tower against PyTorch `BertModel` on the same (MiniLM) weights."""

import jax
import numpy as np
import pytest
import torch
from transformers import BertModel

from mer_jax import bert, tokenization


@pytest.fixture(scope='module')
def towers():
  config, params = bert.load_bert('minilm')
  torch_model = BertModel.from_pretrained(tokenization.encoder_dir('minilm'),
                                          local_files_only=True).eval()
  return config, params, torch_model


def _random_batch(rng, batch, length, vocab):
  ids = rng.integers(1000, vocab, size=(batch, length)).astype(np.int32)
  lengths = rng.integers(2, length + 1, size=batch)
  lengths[0] = length
  mask = (np.arange(length)[None] < lengths[:, None]).astype(np.int32)
  ids[:, 0] = 101  # [CLS]
  ids[np.arange(batch), lengths - 1] = 102  # [SEP]
  return ids * mask, mask


@pytest.mark.parametrize('length', [16, 128])
def test_last_hidden_state_matches_pytorch(towers, length):
  from transformers.models.bert.modeling_flax_bert import FlaxBertModule
  config, params, torch_model = towers
  ids, mask = _random_batch(np.random.default_rng(), 3, length, config.vocab_size)
  module = FlaxBertModule(config, add_pooling_layer=False)
  # Jitted, as everywhere in the project (embedding, training).
  flax_h = jax.jit(lambda i, m: module.apply({'params': params}, i, m).last_hidden_state)(
      ids, mask)
  with torch.no_grad():
    torch_h = torch_model(input_ids=torch.from_numpy(ids.astype(np.int64)),
                          attention_mask=torch.from_numpy(mask.astype(np.int64))
                          ).last_hidden_state.numpy()
  real = mask.astype(bool)
  diff = np.abs(np.asarray(flax_h) - torch_h)
  assert diff[real].max() <= 1e-4
  # Padded positions' states are never read (pooling and fine-tuning mask them) and a
  # [PAD] query over a few real keys is ill-conditioned: float32 order-of-operations
  # differences reach 5e-5 there over 150 random batches on one CPU, 1.04e-4 once on CI
  # (a single element; real positions stay under 7e-6).
  # A masking bug would differ by O(1), so this bound still catches one.
  if not real.all():
    assert diff[~real].max() <= 1e-3


@pytest.mark.parametrize('pooling', ['mean', 'cls'])
def test_tower_pooling_matches_numpy_on_pytorch_states(towers, pooling):
  config, params, torch_model = towers
  ids, mask = _random_batch(np.random.default_rng(), 4, 32, config.vocab_size)
  tower = bert.TextTower(config, pooling=pooling)
  got = bert.embed(tower, params, ids, mask, batch_size=3)  # Exercises a padded batch.
  with torch.no_grad():
    h = torch_model(input_ids=torch.from_numpy(ids.astype(np.int64)),
                    attention_mask=torch.from_numpy(mask.astype(np.int64))
                    ).last_hidden_state.numpy()
  if pooling == 'cls':
    want = h[:, 0]
  else:
    want = (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
  assert got.shape == (4, config.hidden_size)
  np.testing.assert_allclose(got, want, atol=1e-4)

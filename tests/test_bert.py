"""The Flax lyrics tower against PyTorch `BertModel` on the same (MiniLM) weights."""

import contextlib
import functools

import jax
import numpy as np
import pytest
import torch
from transformers import BertModel

from mer_jax import bert, tokenization


@pytest.fixture(scope='module')
def towers():
  """(config, params, PyTorch BertModel in eval mode) of the embedded MiniLM: the
  Flax tower's weights and the independent reference on the same weights."""
  config, params = bert.load_bert('minilm')
  torch_model = BertModel.from_pretrained(tokenization.encoder_dir('minilm'),
                                          local_files_only=True).eval()
  return config, params, torch_model


def _random_batch(rng, batch, length, vocab, one_full=True):
  """Random ids and mask [batch, length]: [CLS] ... [SEP], then padding; with
  `one_full` the first song fills every position."""
  ids = rng.integers(1000, vocab, size=(batch, length)).astype(np.int32)
  lengths = rng.integers(2, length + 1 - (not one_full), size=batch)
  if one_full:
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


def _torch_name(path: tuple) -> tuple[str, bool]:
  """A Flax BERT parameter path -> (PyTorch BertModel parameter name, transposed?)."""
  *mods, leaf = path
  name = {'kernel': 'weight', 'embedding': 'weight', 'scale': 'weight'}.get(leaf, leaf)
  return '.'.join([*mods, name]), leaf == 'kernel'


def assert_pytorch_gradients(got, torch_model, ids, mask, v, pooled=None):
  """PyTorch autograd of sum(mean-pooled last hidden state * v) on `torch_model`
  against the Flax gradients `got` (every parameter but the pooler's), to 2e-5 of each
  leaf's largest; with `pooled`, the Flax embeddings [n, dim] against PyTorch's too."""
  torch_model.zero_grad()
  h = torch_model(input_ids=torch.from_numpy(ids.astype(np.int64)),
                  attention_mask=torch.from_numpy(mask.astype(np.int64))).last_hidden_state
  m = torch.from_numpy(mask[..., None].astype(np.float32))
  emb = (h * m).sum(1) / m.sum(1)
  (emb * torch.from_numpy(v)).sum().backward()
  if pooled is not None:
    np.testing.assert_allclose(np.asarray(pooled), emb.detach().numpy(), atol=1e-4)
  want = dict(torch_model.named_parameters())
  leaves = jax.tree_util.tree_leaves_with_path(got)
  assert len(leaves) == sum('pooler' not in n for n in want)
  for path, g in leaves:
    name, transposed = _torch_name(tuple(k.key for k in path))
    w = want[name].grad.numpy()
    np.testing.assert_allclose(np.asarray(g), w.T if transposed else w,
                               atol=2e-5 * max(1.0, float(np.abs(w).max())), err_msg=name)


def test_fine_tuned_tower_gradients_match_pytorch(towers):
  """The tower's gradients (Dense layers run on [batch * tokens, dim] rows,
  `bert._dense_on_rows`) against PyTorch autograd on the same weights and inputs."""
  config, params, torch_model = towers
  rng = np.random.default_rng()
  ids, mask = _random_batch(rng, 3, 24, config.vocab_size)
  v = rng.standard_normal((3, config.hidden_size)).astype(np.float32)
  tower = bert.TextTower(config, pooling='mean')

  def loss(p):
    return (tower.apply({'params': {'bert': p}}, ids, mask) * v).sum()

  assert_pytorch_gradients(jax.jit(jax.grad(loss))(params), torch_model, ids, mask, v)


def test_dense_on_rows_keeps_training_gradients(towers):
  """With dropout (deterministic=False, one rng), transformers' FlaxBertModule has the
  same gradients with `bert._dense_on_rows` (its Dense layers on [batch * tokens, dim]
  rows, as in TextTower) as without (on [batch, tokens, dim]): flattening changes
  neither the products nor the dropout masks."""
  import flax.linen as nn
  from transformers.models.bert.modeling_flax_bert import FlaxBertModule
  config, params, _ = towers
  rng = np.random.default_rng()
  ids, mask = _random_batch(rng, 4, 20, config.vocab_size)
  v = rng.standard_normal((4, config.hidden_size)).astype(np.float32)
  key = jax.random.key(int(rng.integers(1 << 30)))
  module = FlaxBertModule(config, add_pooling_layer=False)

  def loss(p, rows, deterministic=False):
    with nn.intercept_methods(bert._dense_on_rows) if rows else contextlib.nullcontext():
      hidden = module.apply({'params': p}, ids, mask, deterministic=deterministic,
                            rngs={'dropout': key}).last_hidden_state
    return (bert.pool(hidden, mask, 'mean') * v).sum()

  got = jax.jit(jax.grad(functools.partial(loss, rows=True)))(params)
  want = jax.jit(jax.grad(functools.partial(loss, rows=False)))(params)
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    scale = max(1e-3, float(np.abs(w).max()))
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=1e-5 * scale,
                               err_msg=jax.tree_util.keystr(path))
  # Dropout really was on: without it the gradients differ.
  still = jax.jit(jax.grad(functools.partial(loss, rows=False, deterministic=True)))(params)
  kernel = ('encoder', 'layer', '0', 'output', 'dense', 'kernel')
  pick = lambda t: np.asarray(functools.reduce(lambda d, k: d[k], kernel, t))
  assert not np.allclose(pick(still), pick(want), atol=1e-3)

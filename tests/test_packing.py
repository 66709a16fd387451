"""Packed training steps of the fine-tuned BERT (mer_jax/packing.py): gradients against
PyTorch autograd, and the same gradients and dropout as the unpacked tower."""

import copy
import functools
import os

import jax
import numpy as np
import pandas as pd
import pytest

from mer_jax import bert, packing
from tests import test_bert
from tests.test_bert import towers  # noqa: F401  (the fixture: MiniLM, Flax and PyTorch)


def _random_batch(rng, batch, length, vocab):
  return test_bert._random_batch(rng, batch, length, vocab, one_full=False)  # All padded.


def test_pack_index_names_the_real_tokens_then_out_of_range():
  rng = np.random.default_rng()
  mask = (rng.random((5, 13)) < 0.6).astype(np.int32)
  rows = int(mask.sum()) + 7
  got = np.asarray(packing.pack_index(mask, rows))
  want = np.concatenate([np.flatnonzero(mask.ravel()), np.full(7, mask.size)])
  np.testing.assert_array_equal(got, want)


def test_rows_for_training_is_the_fullest_batch():
  rng = np.random.default_rng()
  lengths = rng.integers(1, 100, size=37)
  orders = [rng.permutation(37) for _ in range(4)]
  most = 0
  for order in orders:  # Batches of 8: 4 full ones, the last 5 examples dropped.
    for b in range(4):
      most = max(most, sum(int(lengths[i]) for i in order[8 * b:8 * b + 8]))
  assert packing.rows_for_training(lengths, orders, 8) == -(-most // 8) * 8
  assert packing.rows_for_training(lengths, orders, 8, multiple=1) == most


def test_checked_refuses_a_batch_beyond_the_rows():
  ok = {'attention_mask': np.ones((2, 5), np.int32)}
  assert list(packing.checked([ok], 10)) == [ok]
  assert list(packing.checked([ok], 0)) == [ok]  # 0: not packed.
  with pytest.raises(ValueError, match='10 real tokens, more than the 9 packed rows'):
    list(packing.checked([ok], 9))


def test_packed_tower_gradients_match_pytorch(towers):
  """A packed training step (dropout off, as PyTorch's eval mode) of the tower against
  PyTorch autograd on the same weights: embeddings and every parameter's gradient."""
  config, params, torch_model = towers
  config = copy.deepcopy(config)
  config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
  rng = np.random.default_rng()
  ids, mask = _random_batch(rng, 3, 24, config.vocab_size)
  v = rng.standard_normal((3, config.hidden_size)).astype(np.float32)
  tower = bert.TextTower(config, pooling='mean', packed_rows=int(mask.sum()) + 5)

  def embedding(p):
    return tower.apply({'params': {'bert': p}}, ids, mask, train=True,
                       rngs={'dropout': jax.random.key(0)})

  got = jax.jit(jax.grad(lambda p: (embedding(p) * v).sum()))(params)
  test_bert.assert_pytorch_gradients(got, torch_model, ids, mask, v,
                                     pooled=jax.jit(embedding)(params))


@pytest.mark.parametrize('pooling', ['mean', 'cls'])
def test_packed_training_keeps_dropout_and_gradients(towers, pooling):
  """With dropout on (one rng), the packed tower's embeddings and gradients equal the
  unpacked tower's: the same masks, drawn in the full shape. Without dropout they
  differ, so dropout was on; packing off in evaluation (train=False)."""
  config, params, _ = towers
  rng = np.random.default_rng()
  ids, mask = _random_batch(rng, 4, 20, config.vocab_size)
  v = rng.standard_normal((4, config.hidden_size)).astype(np.float32)
  key = jax.random.key(int(rng.integers(1 << 30)))

  def embedding(p, rows, train=True):
    tower = bert.TextTower(config, pooling=pooling, packed_rows=rows)
    return tower.apply({'params': {'bert': p}}, ids, mask, train=train,
                       rngs={'dropout': key})

  rows = int(mask.sum()) + 3
  # Packed: every dense layer multiplies [rows, dim] (unpacked: [batch * tokens, dim]).
  jaxpr = jax.make_jaxpr(functools.partial(embedding, rows=rows))(params)
  assert {e.invars[0].aval.shape[0] for e in jaxpr.eqns if e.primitive.name ==
          'dot_general' and e.invars[0].aval.ndim == 2} == {rows}
  loss = lambda p, rows: (embedding(p, rows) * v).sum()
  np.testing.assert_allclose(np.asarray(jax.jit(embedding, static_argnums=1)(params, rows)),
                             np.asarray(jax.jit(embedding, static_argnums=1)(params, 0)),
                             atol=2e-5)
  got = jax.jit(jax.grad(loss), static_argnums=1)(params, rows)
  want = jax.jit(jax.grad(loss), static_argnums=1)(params, 0)
  top = max(float(np.abs(w).max()) for w in jax.tree.leaves(want))
  for (path, g), w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    name = jax.tree_util.keystr(path)
    if "['key']['bias']" in name:  # Softmax ignores it: 0 but for rounding, both ways.
      assert np.abs(np.asarray(g)).max() < 1e-6 * top > np.abs(np.asarray(w)).max(), name
      continue
    scale = max(1e-3, float(np.abs(w).max()))
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=0, atol=1e-5 * scale,
                               err_msg=name)
  evaluated = jax.jit(functools.partial(embedding, train=False), static_argnums=1)
  np.testing.assert_array_equal(np.asarray(evaluated(params, rows)),
                                np.asarray(evaluated(params, 0)))
  config_off = copy.deepcopy(config)
  config_off.hidden_dropout_prob = config_off.attention_probs_dropout_prob = 0.0
  tower_off = bert.TextTower(config_off, pooling=pooling, packed_rows=rows)
  off = jax.jit(jax.grad(lambda p: (tower_off.apply(
      {'params': {'bert': p}}, ids, mask, train=True, rngs={'dropout': key}) * v).sum()))(
          params)
  kernel = ('encoder', 'layer', '0', 'output', 'dense', 'kernel')
  pick = lambda t: np.asarray(functools.reduce(lambda d, k: d[k], kernel, t))
  assert not np.allclose(pick(off), pick(want), atol=1e-3)


def test_with_packed_rows_reaches_the_text_tower(towers):
  from mer_jax import models
  config, _, _ = towers
  model = models.FusionRegressor(audio=None, text=bert.TextTower(config),
                                 modality='lyrics')
  assert bert.with_packed_rows(model, 96).text.packed_rows == 96
  assert bert.with_packed_rows(model, 0) is model
  assert bert.with_packed_rows(models.FusionRegressor(audio=None), 96).text is None


@pytest.fixture(scope='module')
def whole_lyrics(tiny_prepared, tiny_root, tmp_path_factory):
  """A maker of tiny fine-tuned-tower configs whose lyrics are not cut (max_length 128:
  padding left to pack; the tiny config's 48 cuts every song), prepared once."""
  from data_prep import prepare
  from tests.conftest import tiny_config
  data_dir = str(tmp_path_factory.mktemp('whole_lyrics'))

  def make():
    config = tiny_config(tiny_root)
    config.data.data_dir = data_dir
    config.text.max_length = 128
    config.text.trainable = True
    return config
  prepare.prepare(make())
  return make


def test_training_rows_count_the_runs_real_batches(whole_lyrics):
  """`training_rows` against the batches training really draws (every epoch's), and
  the tiny data's fine-tuned tower does pack (fewer rows than batch x tokens)."""
  from mer_jax import input_pipeline, tasks, train
  config = whole_lyrics()
  config.train.num_epochs = 3
  data = train.load_data(config, tasks.get_task(config).input_keys)
  most, width = 0, 0
  for epoch in range(3):
    for batch in input_pipeline.train_batches(data.splits['train'], data.n_train,
                                              config.train.batch_size, config.seed, epoch):
      most, width = max(most, int(batch['attention_mask'].sum())), batch['token_ids'].shape[1]
  rows = packing.training_rows(config, data.splits['train'], data.n_train,
                               input_pipeline.epoch_order)
  assert rows == -(-most // 8) * 8
  assert rows < config.train.batch_size * width
  config.text.pack_tokens = False
  assert packing.training_rows(config, data.splits['train'], data.n_train,
                               input_pipeline.epoch_order) == 0


@pytest.fixture(scope='module')
def small_bert_dir(tmp_path_factory):
  """conftest's tiny_bert_dir with 128 positions, as many as whole_lyrics' tokens."""
  from tests.conftest import make_bert_dir
  return make_bert_dir(str(tmp_path_factory.mktemp('small_bert')), positions=128)


def test_packed_run_trains_as_the_unpacked_one(whole_lyrics, small_bert_dir, tmp_path,
                                                monkeypatch):
  """A fine-tuned run with and without packing: the same losses, epoch by epoch, to
  float rounding (the same parameters, batches and dropout masks)."""
  from mer_jax import train
  rows = []
  spy = bert.with_packed_rows
  monkeypatch.setattr(bert, 'with_packed_rows',
                      lambda model, r: rows.append(r) or spy(model, r))
  histories = {}
  for pack in (True, False):
    config = whole_lyrics()
    config.text.encoder = small_bert_dir
    config.text.learning_rate = 1e-3
    config.text.warmup_steps = 2
    config.train.num_epochs = 2
    config.text.pack_tokens = pack
    workdir = str(tmp_path / str(pack))
    train.train_and_evaluate(config, workdir)
    histories[pack] = pd.read_csv(os.path.join(workdir, 'report', 'history.csv'))
  assert rows[0] > 0 and rows[1] == 0  # Packed, then not.
  for column in ('train_loss', 'val_loss'):
    np.testing.assert_allclose(histories[True][column], histories[False][column],
                               rtol=1e-4)

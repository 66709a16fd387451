"""Audio tower and fusion model: shapes, variants, parameter counts, and Models 1-5
against PyTorch twins on the same weights (eval and train mode)."""

import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks import torch_vgg
from configs import default
from mer_jax import bert, tasks, vgg


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('attention', ['none', 'hidden', 'output'])
@pytest.mark.parametrize('batch_norm', [True, False])
def test_vgg_shapes_and_params(attention, batch_norm):
  widths, hidden, out = (4, 8, 8, 16), 12, 6
  model = vgg.VGG(widths=widths, convs_per_block=2, batch_norm=batch_norm, hidden=hidden,
                  out_dim=out, attention=attention)
  mel = jax.random.uniform(jax.random.key(0), (3, 32, 40), minval=-80, maxval=0)
  variables = model.init(jax.random.key(1), mel)
  y = model.apply(variables, mel)
  assert y.shape == (3, out)
  # Parameter count by hand: convs (+ bias without BN, + BN scale/bias), dense layers.
  n, c_in = 0, 1
  for w in widths:
    for _ in range(2):
      n += 9 * c_in * w + (0 if batch_norm else w) + (2 * w if batch_norm else 0)
      c_in = w
  n += widths[-1] * hidden + hidden + hidden * out + out
  gate = {'none': 0, 'hidden': hidden, 'output': out}[attention]
  if gate:
    n += gate * (gate // 4) + gate // 4 + (gate // 4) * gate + gate
  assert _count(variables['params']) == n
  assert ('batch_stats' in variables) == batch_norm


def test_attention_gate_matches_numpy():
  gate = vgg.FeatureAttention(reduction=4)
  x = jax.random.normal(jax.random.key(0), (5, 16))
  v = gate.init(jax.random.key(1), x)
  p = jax.tree.map(np.asarray, v['params'])
  h = np.maximum(np.asarray(x) @ p['squeeze']['kernel'] + p['squeeze']['bias'], 0)
  g = 1 / (1 + np.exp(-(h @ p['excite']['kernel'] + p['excite']['bias'])))
  np.testing.assert_allclose(gate.apply(v, x), np.asarray(x) * g, rtol=1e-5, atol=1e-6)


# Models 1-5 against PyTorch on the same weights. float32 on both sides; only the order
# of summation differs (XLA's and oneDNN's convolutions).
RTOL, ATOL = 2e-4, 2e-5
MODELS = ('model1', 'model2', 'model3', 'model4', 'model5')


def _config(name):
  """configs/<name>.py at narrow widths (used for testing only)."""
  config = importlib.import_module(f'configs.{name}').get_config()
  config.model.audio.widths = (4, 8, 8, 16)
  config.model.audio.hidden = 12
  config.model.audio.out_dim = 8
  config.model.fusion.hidden = 6
  return config


def _tiny_bert_config():
  """A random 1-layer, 16-d BERT for Model 5's fine-tuned text tower. The tower itself is
  compared with PyTorch's BertModel in tests/test_bert.py; here only the audio tower and
  the fusion head on the tower's embeddings are."""
  from transformers import BertConfig
  return BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=32,
                    max_position_embeddings=32)


def _perturbed(variables, rng):
  """Non-trivial variables: N(0, 0.1) added to every parameter (biases, BatchNorm and
  LayerNorm scales and offsets, congruence gate) and running mean, running variances
  times U(0.5, 2)."""
  def f(path, x):
    x = np.asarray(x)
    if path[-1].key == 'var':
      return jnp.asarray(x * rng.uniform(0.5, 2.0, x.shape), x.dtype)
    return jnp.asarray(x + rng.normal(0, 0.1, x.shape), x.dtype)
  return jax.tree_util.tree_map_with_path(f, variables)


def _twin(tower: vgg.VGG) -> torch_vgg.TorchVGG:
  return torch_vgg.TorchVGG(
      widths=tower.widths, convs_per_block=tower.convs_per_block, hidden=tower.hidden,
      out_dim=tower.out_dim, dropout=tower.dropout, bn_momentum=tower.bn_momentum,
      batch_norm=tower.batch_norm, attention=tower.attention)


def _is_dropout_call(context):
  return isinstance(context.module, nn.Dropout) and context.method_name == '__call__'


def _flax_dropout_masks(apply):
  """The masks of Flax's Dropout layers in the train-mode `apply()` (no-argument
  callable), in call order, as multipliers: 1 / keep_prob where kept, 0 where dropped.

  Each Dropout is called on ones instead of its input. A module draws its rng from the
  'dropout' key, its path and how many it drew before, never from its input, so these
  are the masks of an ordinary call with the same key (the test checks it).
  """
  masks = []

  def interceptor(next_fun, args, kwargs, context):
    if not _is_dropout_call(context):
      return next_fun(*args, **kwargs)
    x, *rest = args
    m = next_fun(jnp.ones_like(x), *rest, **kwargs)
    masks.append(np.array(m))  # Writable: torch.from_numpy wants it.
    return x * m

  with nn.intercept_methods(interceptor):
    apply()
  return masks


def _with_dropout_io(apply):
  """apply()'s result and the (input, output) of each Dropout call in it, in order."""
  calls = []

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if _is_dropout_call(context):
      calls.append((np.asarray(args[0]), np.asarray(out)))
    return out

  with nn.intercept_methods(interceptor):
    return apply(), calls


@pytest.mark.parametrize('train', [False, True])
@pytest.mark.parametrize('name', MODELS)
def test_audio_tower_matches_torch_twin(name, train):
  """Outputs in eval mode; in train mode outputs (BatchNorm on batch statistics, Flax's
  dropout masks replayed in torch) and the updated running statistics."""
  rng = np.random.default_rng()
  tower = tasks.create_model(_config(name), _tiny_bert_config()).audio
  batch, mels, frames = 3, 32, 40
  mel = rng.uniform(-80, 0, (batch, mels, frames)).astype(np.float32)
  v = _perturbed(tower.init(jax.random.key(int(rng.integers(1 << 30))), mel), rng)
  assert ('batch_stats' in v) == tower.batch_norm
  twin = torch_vgg.load_flax_params(_twin(tower), v).train(train)
  if not train:
    with torch.no_grad():
      got = twin(torch.from_numpy(mel)).numpy()
    np.testing.assert_allclose(got, tower.apply(v, mel), rtol=RTOL, atol=ATOL)
    return

  key = jax.random.key(int(rng.integers(1 << 30)))
  run = lambda: tower.apply(v, mel, train=True, rngs={'dropout': key},  # noqa: E731
                            mutable=['batch_stats'])
  masks = _flax_dropout_masks(run)
  (want, updated), calls = _with_dropout_io(run)
  keep = 1 - tower.dropout
  assert [m.shape for m in masks] == [(batch, tower.widths[-1]), (batch, tower.hidden)]
  for m, (x, y) in zip(masks, calls, strict=True):  # The masks of the ordinary call.
    np.testing.assert_allclose(y, np.where(m > 0, x / keep, 0), rtol=1e-6, atol=0)
    assert set(np.unique(m)) <= {0, 1 / keep}
  if tower.dropout > 0:  # Model 4: some units dropped, some kept.
    assert 0 < np.mean(np.concatenate([m.ravel() for m in masks]) == 0) < 1
  got = twin(torch.from_numpy(mel), dropout_masks=[torch.from_numpy(m) for m in masks])
  np.testing.assert_allclose(got.detach().numpy(), want, rtol=RTOL, atol=ATOL)

  if not tower.batch_norm:
    assert updated == {}
    return
  bns = [m for m in twin.features if isinstance(m, torch.nn.BatchNorm2d)]
  names = [f'bn{b}_{c}' for b in range(len(tower.widths))
           for c in range(tower.convs_per_block)]
  mom = tower.bn_momentum  # torch's momentum is 1 - mom.
  for i, (bn_name, bn) in enumerate(zip(names, bns, strict=True)):
    old, new = v['batch_stats'][bn_name], updated['batch_stats'][bn_name]
    block = i // tower.convs_per_block
    n = batch * (mels >> block) * (frames >> block)  # Values per channel.
    np.testing.assert_allclose(new['mean'], bn.running_mean.numpy(), rtol=RTOL, atol=ATOL)
    # torch averages the unbiased batch variance into running_var, Flax the biased one
    # (the one both normalise with): undo Bessel's factor n / (n - 1) on torch's update.
    # For the last block (n = 60) the two differ by 1.7 % of the update.
    torch_update = bn.running_var.numpy() - mom * np.asarray(old['var'])
    np.testing.assert_allclose(new['var'], mom * np.asarray(old['var'])
                               + torch_update * (n - 1) / n, rtol=RTOL, atol=ATOL)


class TorchFusion(torch.nn.Module):
  """`models.FusionRegressor` in PyTorch, written from its docstring: LayerNorm on the
  lyrics embedding (Flax's epsilon 1e-6) [times the congruence gate sigmoid(w c + b)],
  concatenated after the audio features, Linear -> ReLU -> dropout -> Linear -> sigmoid.
  """

  def __init__(self, audio, text_dim, audio_dim, hidden, dropout, gate):
    super().__init__()
    self.audio = audio
    self.text_norm = None if text_dim is None else torch.nn.LayerNorm(text_dim, eps=1e-6)
    self.gate = torch.nn.Parameter(torch.zeros(2)) if gate else None  # (w, b).
    feats = (audio_dim if audio is not None else 0) + (text_dim or 0)
    self.fusion_hidden = torch.nn.Linear(feats, hidden)
    self.drop = torch.nn.Dropout(dropout)
    self.fusion_out = torch.nn.Linear(hidden, 2)

  def forward(self, mel, emb, congruence):
    feats = []
    if self.audio is not None:
      feats.append(self.audio(mel))
    if self.text_norm is not None:
      text = self.text_norm(emb)
      if self.gate is not None:
        text = text * torch.sigmoid(self.gate[0] * congruence + self.gate[1])[:, None]
      feats.append(text)
    x = self.drop(torch.relu(self.fusion_hidden(torch.cat(feats, dim=-1))))
    return torch.sigmoid(self.fusion_out(x))


def _load_fusion(twin, params):
  t = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731
  with torch.no_grad():
    for layer in ('fusion_hidden', 'fusion_out'):
      getattr(twin, layer).weight.copy_(t(params[layer]['kernel']).T)
      getattr(twin, layer).bias.copy_(t(params[layer]['bias']))
    if twin.text_norm is not None:
      twin.text_norm.weight.copy_(t(params['text_norm']['scale']))
      twin.text_norm.bias.copy_(t(params['text_norm']['bias']))
    if twin.gate is not None:
      twin.gate.copy_(t([params['gate_w'], params['gate_b']]))


# Every Model with both modalities; each modality and the congruence gate.
FUSION_CASES = ([(name, 'bimodal', False) for name in MODELS]
                + [('model4', 'audio', False), ('model4', 'lyrics', False),
                   ('model4', 'bimodal', True), ('model2', 'lyrics', True),
                   ('model5', 'bimodal', True)])


@pytest.mark.parametrize('name,modality,gate', FUSION_CASES)
def test_fusion_model_matches_torch_twin(name, modality, gate):
  rng = np.random.default_rng()
  config = _config(name)
  config.model.modality = modality
  config.model.fusion.congruence_gate = gate
  model = tasks.create_model(config, _tiny_bert_config())
  batch, length = 3, 12
  mask = (np.arange(length) < rng.integers(2, length + 1, (batch, 1))).astype(np.int32)
  inputs = {
      'mel': rng.uniform(-80, 0, (batch, 32, 40)).astype(np.float32),
      # Off-centre and scaled: LayerNorm has something to do.
      'lyrics_emb': (rng.normal(0.5, 3.0, (batch, 384))).astype(np.float32),
      'token_ids': rng.integers(1, 64, (batch, length)).astype(np.int32) * mask,
      'attention_mask': mask,
      'congruence': rng.uniform(-1, 1, batch).astype(np.float32)}
  inputs = {k: inputs[k] for k in tasks.input_keys(config)}
  v = _perturbed(model.init(jax.random.key(int(rng.integers(1 << 30))), inputs), rng)
  want, inter = model.apply(v, inputs, mutable=['intermediates'],
                            capture_intermediates=lambda m, _: isinstance(m, bert.TextTower))
  emb = inputs.get('lyrics_emb')
  if model.text is not None:  # Model 5: the fine-tuned BERT tower's embeddings.
    emb = np.array(inter['intermediates']['text']['__call__'][0])  # Writable (torch).
  audio = None
  if modality != 'lyrics':
    audio = torch_vgg.load_flax_params(
        _twin(model.audio), {'params': v['params']['audio'],
                             'batch_stats': v.get('batch_stats', {}).get('audio', {})})
  twin = TorchFusion(audio, None if modality == 'audio' else emb.shape[-1],
                     config.model.audio.out_dim, config.model.fusion.hidden,
                     config.model.fusion.dropout, gate).eval()
  _load_fusion(twin, v['params'])
  t = lambda k: torch.from_numpy(np.asarray(inputs[k])) if k in inputs else None  # noqa: E731
  with torch.no_grad():
    got = twin(t('mel'), None if emb is None else torch.from_numpy(emb), t('congruence'))
  assert want.shape == (batch, 2)
  np.testing.assert_allclose(got.numpy(), want, rtol=RTOL, atol=ATOL)
  assert ('audio' in v['params']) == (modality != 'lyrics')
  assert ('text_norm' in v['params']) == (modality != 'audio')


# Parameter counts of the thesis's audio towers at full size, computed by hand:
# Model 1: convs 1->64 (9*64+64), 64->128 (9*64*128+128), 128->256, 256->512 with biases
#   = 640 + 73,856 + 295,168 + 1,180,160 = 1,549,824; dense 512->256 (131,328) and
#   256->64 (16,448): 1,697,600.
# Model 2: convs without bias + BatchNorm scale/bias (2c): 704 + 73,984 + 295,424
#   + 1,180,672 = 1,550,784; + 147,776 = 1,698,560.
# Model 3: + gate on 64 (64*16+16 + 16*64+64 = 2,128) = 1,700,688.
# Model 4: two convs per block: 37,696 + 221,696 + 885,760 + 3,540,992 = 4,686,144;
#   dense 131,328 + gate on 256 (256*64+64 + 64*256+256 = 33,088) + 16,448 = 4,867,008.
@pytest.mark.parametrize('name,count', [('model1', 1_697_600), ('model2', 1_698_560),
                                        ('model3', 1_700_688), ('model4', 4_867_008)])
def test_thesis_audio_towers_parameter_counts(name, count):
  import importlib
  config = importlib.import_module(f'configs.{name}').get_config()
  tower = tasks.create_model(config).audio
  mel = jnp.zeros((1, 128, 64))
  shapes = jax.eval_shape(tower.init, jax.random.key(0), mel)
  assert _count(shapes['params']) == count
  out = jax.eval_shape(lambda v: tower.apply(v, mel), shapes)
  assert out.shape == (1, 64)


def test_bfloat16_compute_keeps_float32_params_outputs_and_loss():
  """Mixed precision: the same parameters give nearly the same outputs and the same
  gradients' direction; parameters, optimizer state and the loss stay float32."""
  from mer_jax import tasks, train
  rng = np.random.default_rng()
  batch = {'mel': rng.uniform(-80, 0, (4, 32, 48)).astype(np.float32),
           'lyrics_emb': rng.normal(size=(4, 384)).astype(np.float32),
           'targets': rng.uniform(size=(4, 2)).astype(np.float32)}
  out = {}
  for name in ('float32', 'bfloat16'):
    config = default.get_config()
    config.model.audio.widths = (4, 8, 8, 16)
    config.train.compute_dtype = name
    model = tasks.create_model(config)
    assert model.audio.dtype == jnp.dtype(name)
    inputs = {k: batch[k] for k in ('mel', 'lyrics_emb')}
    state = train.create_train_state(config, model, jax.random.key(0), inputs, 10)
    pred = model.apply({'params': state.params, 'batch_stats': state.batch_stats}, inputs)
    loss_fn = tasks.get_task(config).loss_fn
    new_state, m = jax.jit(lambda s, b, r: train.train_step(s, b, r, loss_fn))(
        state, {'inputs': inputs, 'targets': batch['targets']}, jax.random.key(1))
    assert pred.dtype == jnp.float32
    assert m.loss.compute().dtype == jnp.float32
    for leaf in jax.tree.leaves((new_state.params, new_state.opt_state,
                                 new_state.batch_stats)):
      assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
    out[name] = (np.asarray(pred), float(m.loss.compute()))
  np.testing.assert_allclose(out['bfloat16'][0], out['float32'][0], atol=2e-2)
  assert abs(out['bfloat16'][1] - out['float32'][1]) <= 0.05 * out['float32'][1]
  with pytest.raises(ValueError, match='compute_dtype'):
    config.train.compute_dtype = 'float16'
    tasks.create_model(config)

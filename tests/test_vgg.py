"""Audio tower and fusion model: shapes, variants, parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from mer_jax import models, vgg


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


def test_vgg_train_mode_updates_batch_stats_and_uses_dropout():
  model = vgg.VGG(widths=(4, 4, 4, 4), hidden=8, out_dim=4, dropout=0.5)
  mel = jax.random.uniform(jax.random.key(0), (4, 16, 16), minval=-80, maxval=0)
  variables = model.init(jax.random.key(1), mel)
  y1, upd = model.apply(variables, mel, train=True, rngs={'dropout': jax.random.key(2)},
                        mutable=['batch_stats'])
  y2, _ = model.apply(variables, mel, train=True, rngs={'dropout': jax.random.key(3)},
                      mutable=['batch_stats'])
  assert not np.allclose(y1, y2)  # Different dropout masks.
  before = jax.tree.leaves(variables['batch_stats'])
  after = jax.tree.leaves(upd['batch_stats'])
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_attention_gate_matches_numpy():
  gate = vgg.FeatureAttention(reduction=4)
  x = jax.random.normal(jax.random.key(0), (5, 16))
  v = gate.init(jax.random.key(1), x)
  p = jax.tree.map(np.asarray, v['params'])
  h = np.maximum(np.asarray(x) @ p['squeeze']['kernel'] + p['squeeze']['bias'], 0)
  g = 1 / (1 + np.exp(-(h @ p['excite']['kernel'] + p['excite']['bias'])))
  np.testing.assert_allclose(gate.apply(v, x), np.asarray(x) * g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('modality', ['bimodal', 'audio', 'lyrics'])
def test_fusion_outputs_in_unit_interval(modality):
  config = default.get_config()
  config.model.modality = modality
  config.model.widths = (4, 4, 4, 4)
  model = models.create_model(config)
  mel = jax.random.uniform(jax.random.key(0), (2, 32, 24), minval=-80, maxval=0)
  emb = 10 * jax.random.normal(jax.random.key(1), (2, 384))
  inputs = {'mel': mel, 'lyrics_emb': emb}
  variables = model.init(jax.random.key(2), inputs)
  y = model.apply(variables, inputs)
  assert y.shape == (2, 2)
  assert jnp.all((y > 0) & (y < 1))
  has_audio = 'audio' in variables['params']
  assert has_audio == (modality != 'lyrics')
  assert ('text_norm' in variables['params']) == (modality != 'audio')


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
  tower = models.create_model(config).audio
  mel = jnp.zeros((1, 128, 64))
  shapes = jax.eval_shape(tower.init, jax.random.key(0), mel)
  assert _count(shapes['params']) == count
  out = jax.eval_shape(lambda v: tower.apply(v, mel), shapes)
  assert out.shape == (1, 64)


def test_bfloat16_compute_keeps_float32_params_outputs_and_loss():
  """Mixed precision: the same parameters give nearly the same outputs and the same
  gradients' direction; parameters, optimizer state and the loss stay float32."""
  from mer_jax import train
  rng = np.random.default_rng()
  batch = {'mel': rng.uniform(-80, 0, (4, 32, 48)).astype(np.float32),
           'lyrics_emb': rng.normal(size=(4, 384)).astype(np.float32),
           'targets': rng.uniform(size=(4, 2)).astype(np.float32)}
  out = {}
  for name in ('float32', 'bfloat16'):
    config = default.get_config()
    config.model.widths = (4, 8, 8, 16)
    config.train.compute_dtype = name
    model = models.create_model(config)
    assert model.audio.dtype == jnp.dtype(name)
    inputs = {k: batch[k] for k in ('mel', 'lyrics_emb')}
    state = train.create_train_state(config, model, jax.random.key(0), inputs, 10)
    pred = model.apply({'params': state.params, 'batch_stats': state.batch_stats}, inputs)
    new_state, m = jax.jit(train.train_step)(
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
    models.create_model(config)

"""The Siamese model, its task in the shared training loop, and the gated fusion."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mer_jax import losses, metrics, models, tasks, train
from mer_jax.tasks import siamese
from tests.conftest import tiny_config


def _siamese_config(root):
  config = tiny_config(root)
  config.task = 'siamese'
  config.siamese.embed_dim = 8
  config.siamese.proj_hidden = 16
  return config


def _inputs(n=4, frames=32, seed=None):
  rng = np.random.default_rng(seed)
  return {'mel': rng.uniform(-80, 0, (n, 128, frames)).astype(np.float32),
          'lyrics_emb': rng.normal(size=(n, 384)).astype(np.float32)}


def test_siamese_outputs_unit_embeddings_and_the_temperature(tmp_path):
  config = _siamese_config(str(tmp_path))
  model = tasks.create_model(config)
  assert isinstance(model, models.SiameseModel)
  assert tasks.input_keys(config) == ('mel', 'lyrics_emb')
  x = _inputs()
  variables = model.init(jax.random.key(0), x)
  out = model.apply(variables, x)
  for k in ('audio', 'lyrics'):
    assert out[k].shape == (4, 8)
    np.testing.assert_allclose(np.linalg.norm(out[k], axis=-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(float(out['logit_scale']), 1 / 0.07, rtol=1e-5)
  assert 'log_logit_scale' in variables['params']
  # Clipped at 100 like CLIP; a fixed temperature has no parameter.
  params = {**variables['params'], 'log_logit_scale': jnp.float32(9.0)}
  big = model.apply({**variables, 'params': params}, x)
  np.testing.assert_allclose(float(big['logit_scale']), 100.0, rtol=1e-5)
  config.siamese.learn_temperature = False
  config.siamese.init_temperature = 0.5
  fixed = tasks.create_model(config)
  v = fixed.init(jax.random.key(0), x)
  assert 'log_logit_scale' not in v['params']
  np.testing.assert_allclose(float(fixed.apply(v, x)['logit_scale']), 2.0, rtol=1e-6)


def test_siamese_train_step_uses_the_configured_loss(tmp_path):
  """The loss the train step reports is the InfoNCE / pairwise loss of the model's own
  outputs (dropout off), recomputed with numpy-checked loss functions."""
  config = _siamese_config(str(tmp_path))
  x = _inputs(seed=0)
  batch = {'inputs': x, 'quadrant': jnp.array([0, 1, 2, 3], jnp.int32)}
  for loss in ('infonce', 'pairwise'):
    config.siamese.loss = loss
    config.siamese.negatives = 'other_quadrant'
    model = tasks.create_model(config)
    state = train.create_train_state(config, model, jax.random.key(0), x, 10)
    task = tasks.get_task(config)
    _, m = jax.jit(lambda s, b, r: train.train_step(s, b, r, task.loss_fn))(
        state, batch, jax.random.key(3))
    out, _ = model.apply({'params': state.params, 'batch_stats': state.batch_stats}, x,
                         train=True, mutable=['batch_stats'])
    if loss == 'infonce':
      want = losses.info_nce(out['audio'], out['lyrics'], out['logit_scale'])
    else:
      rng = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), 0), 1)
      neg = losses.sample_negatives(rng, batch['quadrant'], 'other_quadrant')
      assert np.all(np.asarray(neg) != np.arange(4))
      want = losses.pairwise_margin(out['audio'], out['lyrics'], neg, config.siamese.margin)
    np.testing.assert_allclose(float(m.loss.compute()), float(want), rtol=1e-4)
  config.siamese.loss = 'triplet'
  with pytest.raises(ValueError, match='siamese.loss'):
    tasks.get_task(config)


@pytest.mark.parametrize('mode', ['infonce', 'pairwise'])
def test_two_devices_give_the_same_siamese_loss(dp_runs, mode):
  """InfoNCE negatives span the global batch (and the pairwise sampler draws the same
  negatives) however the batch is split over devices."""
  one, two = dp_runs(1, mode), dp_runs(2, mode)
  assert one.pop('devices') == 1 and two.pop('devices') == 2
  assert one.keys() == two.keys()
  np.testing.assert_allclose(two['losses'], one['losses'], rtol=1e-5)
  for k in one:  # Adam's first steps amplify float rounding of tiny gradients.
    np.testing.assert_allclose(two[k], one[k], atol=1e-4, rtol=1e-4, err_msg=k)
  assert one['losses'][0] != one['losses'][-1]


def test_gated_fusion_scales_the_lyrics_by_congruence(tmp_path):
  config = tiny_config(str(tmp_path))
  config.model.fusion.congruence_gate = True
  assert tasks.input_keys(config)[-1] == 'congruence'
  model = tasks.create_model(config)
  x = {**_inputs(seed=1), 'congruence': np.array([-1.0, 0.0, 0.5, 1.0], np.float32)}
  variables = model.init(jax.random.key(0), x)
  assert float(variables['params']['gate_w']) == 1.0
  pred = model.apply(variables, x)
  # With the gate closed (b -> -inf) the output is the audio-only path's.
  closed = {**variables['params'], 'gate_b': jnp.float32(-1e4)}
  zero_text = {**x, 'lyrics_emb': np.zeros_like(x['lyrics_emb'])}
  np.testing.assert_allclose(
      model.apply({**variables, 'params': closed}, x),
      model.apply({**variables, 'params': {**closed}}, zero_text), atol=1e-5)
  x2 = {**x, 'congruence': -x['congruence']}
  assert not np.allclose(pred, model.apply(variables, x2))


@pytest.fixture(scope='module')
def siamese_run(tiny_prepared, tiny_root, tmp_path_factory):
  config = _siamese_config(tiny_root)
  config.train.num_epochs = 4
  workdir = str(tmp_path_factory.mktemp('siamese'))
  return config, workdir, train.train_and_evaluate(config, workdir)


def test_siamese_run_report(siamese_run):
  config, workdir, results = siamese_run
  report = os.path.join(workdir, 'report')
  cong = pd.read_csv(os.path.join(report, 'congruence.csv'))
  assert len(cong) == config.data.synthetic.num_songs
  assert set(cong.split) == {'train', 'validation', 'test'}
  assert cong.congruence.between(-1 - 1e-6, 1 + 1e-6).all()
  with np.load(os.path.join(report, 'embeddings.npz')) as z:
    emb = {k: z[k] for k in z.files}
  np.testing.assert_allclose(np.linalg.norm(emb['audio'], axis=1), 1.0, rtol=1e-5)
  # Congruence is the cosine of each song's own embeddings.
  np.testing.assert_allclose(cong.congruence, np.sum(emb['audio'] * emb['lyrics'], 1),
                             atol=1e-5)
  retrieval = pd.read_csv(os.path.join(report, 'retrieval.csv'))
  for split in ('validation', 'test'):
    sel = emb['split'] == split
    want = metrics.retrieval_metrics(emb['audio'][sel] @ emb['lyrics'][sel].T)
    got = retrieval[retrieval.split == split].set_index('metric').value
    for k in ('a2l_r1', 'l2a_r5', 'a2l_median_rank', 'mrr'):
      assert got[k] == pytest.approx(want[k], abs=1e-6), (split, k)
    assert results[split]['mrr'] == pytest.approx(want['mrr'], abs=1e-6)
  labelled = cong[cong.split == 'test']
  if labelled.congruent.nunique() == 2:
    assert results['test']['incongruent_auc'] == pytest.approx(metrics.separation_auc(
        labelled.congruence, labelled.congruent == 1), abs=1e-6)
  md = open(os.path.join(report, 'retrieval.md')).read()
  assert 'audio → lyrics' in md and 'random' in md


def test_siamese_run_keeps_the_best_validation_epoch(siamese_run):
  """The report is of the epoch with the highest validation matched-pair AUC
  (config.siamese.selection)."""
  config, workdir, results = siamese_run
  assert config.siamese.selection == 'matched_auc'
  history = pd.read_csv(os.path.join(workdir, 'report', 'history.csv'))
  assert len(history) == config.train.num_epochs
  assert results['validation']['matched_auc'] == pytest.approx(
      history.val_matched_auc.max(), abs=1e-6)
  # Epochs tied at the best AUC (45 songs: AUC steps are coarse) are equally valid.
  best = history.val_matched_auc >= history.val_matched_auc.max() - 1e-9
  assert any(results['validation']['mrr'] == pytest.approx(m, abs=1e-6)
             for m in history.val_mrr[best])
  assert history.train_loss.iloc[-1] < history.train_loss.iloc[0]


def test_siamese_summary_matches_numpy(tmp_path):
  rng = np.random.default_rng()
  a = rng.normal(size=(9, 4))
  t = a + rng.normal(size=(9, 4))
  a /= np.linalg.norm(a, axis=1, keepdims=True)
  t /= np.linalg.norm(t, axis=1, keepdims=True)
  config = _siamese_config(str(tmp_path))
  config.siamese.selection = 'mrr'
  s = siamese.summarizer(config)({'audio': a, 'lyrics': t,
                                  'logit_scale': np.full(9, 5.0)})
  logits = 5.0 * a @ t.T
  lse_r = np.log(np.exp(logits).sum(1))
  lse_c = np.log(np.exp(logits).sum(0))
  want = 0.5 * (np.mean(lse_r - np.diag(logits)) + np.mean(lse_c - np.diag(logits)))
  assert s['loss'] == pytest.approx(want, rel=1e-4)
  assert s['selection'] == pytest.approx(1 - s['mrr'])
  assert s['temperature'] == pytest.approx(0.2)

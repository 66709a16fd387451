"""The gaussian head (tasks/fusion_gaussian.py, models.FusionRegressor(head='gaussian')):
its parameters and bounds, the losses as configured (against scipy / numpy formulas),
the annotator-std check, and a tiny trained run's report and predictions (against
scipy's normal distribution and numerical integration)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from mer_jax import models, tasks
from tests.conftest import tiny_config


def _regressor(head):
  return models.FusionRegressor(audio=None, audio_keys=(), modality='audio', hidden=8,
                                head=head)


def test_gaussian_head_keeps_the_point_heads_parameters_and_bounds_log_var():
  rng = np.random.default_rng()
  x = {'audio_emb': jnp.asarray(rng.normal(size=(5, 12)), jnp.float32)}
  key = jax.random.key(int(rng.integers(1 << 30)))
  point = _regressor('point').init(key, x)['params']
  gauss = _regressor('gaussian').init(key, x)['params']
  # Same seed, same parameters: a point run's numbers do not depend on the new head.
  shared = {k: v for k, v in gauss.items() if k not in ('fusion_log_var', 'fusion_var_hidden')}
  assert jax.tree.map(np.asarray, shared).keys() == point.keys()
  for a, b in zip(jax.tree.leaves(shared), jax.tree.leaves(point)):
    np.testing.assert_array_equal(a, b)
  out = _regressor('gaussian').apply({'params': gauss}, x)
  np.testing.assert_array_equal(out['mean'], _regressor('point').apply({'params': point}, x))
  np.testing.assert_allclose(np.exp(0.5 * out['log_var']), 0.2, rtol=1e-5)  # Initially.
  # A zero kernel leaves log_var = MIN + (MAX - MIN) * logistic(bias).
  bias = rng.normal(scale=3.0, size=2).astype(np.float32)
  p = {**gauss, 'fusion_log_var': {'kernel': jnp.zeros_like(gauss['fusion_log_var']['kernel']),
                                   'bias': jnp.asarray(bias)}}
  lv = np.asarray(_regressor('gaussian').apply({'params': p}, x)['log_var'])
  want = np.log(1e-6) + (np.log(0.25) - np.log(1e-6)) / (1 + np.exp(-bias.astype(np.float64)))
  np.testing.assert_allclose(lv, np.broadcast_to(want, lv.shape), rtol=1e-5)
  # Any kernel: sigma stays within 0.001..0.5.
  p['fusion_log_var']['kernel'] = jnp.asarray(
      rng.normal(scale=1e3, size=p['fusion_log_var']['kernel'].shape), jnp.float32)
  lv = np.asarray(_regressor('gaussian').apply({'params': p}, x)['log_var'])
  assert np.all(lv >= np.log(1e-6) - 1e-4) and np.all(lv <= np.log(0.25) + 1e-5)


def _config(loss, head='gaussian'):
  c = tiny_config('/unused')
  c.model.head, c.train.loss = head, loss
  return c


@pytest.mark.parametrize('faithful', [True, False])
@pytest.mark.parametrize('loss', ['gaussian_nll', 'beta_nll', 'annotator_kl'])
def test_the_task_trains_on_the_configured_loss(loss, faithful):
  rng = np.random.default_rng()
  n = 7
  mu, y = rng.uniform(0.1, 0.9, (n, 2)), rng.uniform(0, 1, (n, 2))
  lv, std = rng.uniform(-6, -1, (n, 2)), rng.uniform(0.02, 0.3, (n, 2))
  config = _config(loss)
  config.train.faithful = faithful
  config.train.beta_nll = float(rng.uniform(0.2, 1.0))
  task = tasks.get_task(config)
  out = {'mean': jnp.asarray(mu, jnp.float32), 'log_var': jnp.asarray(lv, jnp.float32)}
  batch = {'targets': jnp.asarray(y, jnp.float32),
           'target_std': jnp.asarray(std, jnp.float32)}
  got = float(task.loss_fn(out, batch, jax.random.key(0)))
  sigma = np.sqrt(np.exp(lv))
  nll = -stats.norm.logpdf(y, mu, sigma)
  if loss == 'gaussian_nll':
    want = nll.mean()
  elif loss == 'beta_nll':
    want = (nll * sigma ** (2 * config.train.beta_nll)).mean()
  else:  # KL(N(y, std^2) || N(mu, sigma^2)) in its log-ratio form.
    want = (np.log(sigma / std) + (std ** 2 + (y - mu) ** 2) / (2 * sigma ** 2) - 0.5).mean()
  np.testing.assert_allclose(got, want, rtol=2e-5)


def test_faithful_training_gives_the_towers_and_mean_the_mse_gradient():
  """config.train.faithful: every parameter but the variance MLP's gets exactly the
  point head's MSE gradient; the variance MLP gets the NLL's (and nothing else does)."""
  rng = np.random.default_rng()
  x = {'audio_emb': jnp.asarray(rng.normal(size=(6, 12)), jnp.float32)}
  batch = {'targets': jnp.asarray(rng.uniform(0, 1, (6, 2)), jnp.float32),
           'target_std': jnp.full((6, 2), 0.1, jnp.float32)}
  config = _config('gaussian_nll')
  task = tasks.get_task(config)
  model = models.FusionRegressor(audio=None, audio_keys=(), modality='audio', hidden=8,
                                 head='gaussian', detach_variance=True)
  params = model.init(jax.random.key(int(rng.integers(1 << 30))), x)['params']
  # Move the variance MLP off its zero-kernel start so its gradient is not trivial.
  params['fusion_log_var']['kernel'] = jnp.asarray(
      rng.normal(size=params['fusion_log_var']['kernel'].shape), jnp.float32)
  grads = jax.grad(lambda p: task.loss_fn(model.apply({'params': p}, x), batch, None))(params)
  mse_grads = jax.grad(lambda p: jnp.mean(jnp.square(
      _regressor('point').apply({'params': p}, x) - batch['targets'])))(
          {k: v for k, v in params.items() if not k.startswith('fusion_var')
           and k != 'fusion_log_var'})
  for k, g in mse_grads.items():
    for a, b in zip(jax.tree.leaves(grads[k]), jax.tree.leaves(g)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
  def nll(p):  # The variance MLP alone, the means held fixed.
    out = model.apply({'params': {**params, **p}}, x)
    var = jnp.exp(out['log_var'])
    mu = jax.lax.stop_gradient(out['mean'])
    return jnp.mean(0.5 * (jnp.log(2 * jnp.pi * var) + (batch['targets'] - mu) ** 2 / var))
  var_params = {k: params[k] for k in ('fusion_var_hidden', 'fusion_log_var')}
  for k, g in jax.grad(nll)(var_params).items():
    for a, b in zip(jax.tree.leaves(grads[k]), jax.tree.leaves(g)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    assert any(np.abs(a).max() > 0 for a in jax.tree.leaves(g))


def test_heads_and_losses_must_match():
  with pytest.raises(ValueError, match="config.model.head='gaussian'"):
    tasks.get_task(_config('gaussian_nll', head='point'))
  with pytest.raises(ValueError, match='gaussian_nll'):
    tasks.get_task(_config('mse'))
  bad = _config('gaussian_nll')
  bad.eval.sigma_scaling = 'test'
  with pytest.raises(ValueError, match='sigma_scaling must be one of'):
    tasks.get_task(bad)
  with pytest.raises(ValueError, match='config.model.head must be one of'):
    tasks.get_task(_config('mse', head='beta'))
  assert 'fusion_gaussian' not in tasks.names() and 'fusion' in tasks.names()
  assert tasks.heads('fusion') == ('point', 'gaussian') and tasks.heads('siamese') == ('point',)
  config = _config('gaussian_nll')
  config.task = 'siamese'
  with pytest.raises(ValueError, match="one of \\('point',\\) for task 'siamese'"):
    tasks.get_task(config)


def test_annotator_kl_needs_every_songs_std():
  import tensorflow as tf

  from mer_jax.tasks import fusion_gaussian

  def split(stds):
    return tf.data.Dataset.from_tensor_slices({
        'song_id': [f's{i}'.encode() for i in range(len(stds))],
        'target_std': np.asarray(stds, np.float32)})

  config = _config('annotator_kl')
  config.data.name = 'my_songs'
  good = {'train': split([[0.1, 0.2]] * 3), 'validation': split([[0.1, 0.1]])}
  fusion_gaussian.check_annotator_std(config, good)
  bad = {**good, 'validation': split([[0.1, 0.1], [np.nan, 0.2], [0.3, np.nan]])}
  with pytest.raises(ValueError, match=r"2 of 3 validation songs of dataset 'my_songs' .*"
                     r"\(e\.g\. s1, s2\)"):
    fusion_gaussian.check_annotator_std(config, bad)
  fusion_gaussian.check_annotator_std(_config('gaussian_nll'), bad)  # Needs no std.


@pytest.fixture(scope='module')
def gaussian_run(tiny_prepared, tiny_root, tmp_path_factory):
  from mer_jax import train
  config = tiny_config(tiny_root)
  config.model.head, config.train.loss = 'gaussian', 'annotator_kl'
  config.train.num_epochs = 3
  workdir = str(tmp_path_factory.mktemp('gaussian'))
  return config, workdir, train.train_and_evaluate(config, workdir)


def _crps_by_quadrature(y, mu, sigma):
  """The CRPS integral: int (F(x) - 1[x >= y])^2 dx, F the normal CDF."""
  f = lambda x: (stats.norm.cdf(x, mu, sigma) - (x >= y)) ** 2  # noqa: E731
  return (integrate.quad(f, mu - 12 * sigma, y, limit=200)[0]
          + integrate.quad(f, y, mu + 12 * sigma, limit=200)[0])


def test_the_report_scores_the_predicted_gaussians(gaussian_run, tiny_prepared):
  config, workdir, results = gaussian_run
  folder = os.path.join(workdir, 'report')
  preds = pd.read_csv(os.path.join(folder, 'predictions.csv'), dtype={'song_id': str})
  manifest = pd.read_csv(os.path.join(config.data.root, 'manifest.csv')).set_index('song_id')
  table = pd.read_csv(os.path.join(folder, 'uncertainty.csv'))
  long = pd.read_csv(os.path.join(folder, 'metrics.csv'))
  with open(os.path.join(folder, 'sigma_scale.json')) as f:
    scale = json.load(f)
  assert scale['fit_on'] == 'validation'
  for d in ('valence', 'arousal'):
    # The annotator std travels from the manifest through the prepared data.
    np.testing.assert_allclose(preds[f'{d}_annotator_std'],
                               manifest.loc[preds.song_id, f'{d}_std'], atol=1e-6)
    assert np.all(preds[f'{d}_sigma'] > 0)
    for split, g in preds.groupby('split'):
      y, mu, s = (g[f'{d}_{k}'].to_numpy() for k in ('true', 'pred', 'sigma'))
      got = table[(table.split == split) & (table.dimension == d)].set_index('metric').value
      np.testing.assert_allclose(got['nll'], -stats.norm.logpdf(y, mu, s).mean(),
                                 rtol=1e-4, atol=1e-5)
      for p in (0.5, 0.8, 0.9, 0.95):
        lo, hi = stats.norm.interval(p, mu, s)
        np.testing.assert_allclose(got[f'coverage_{100 * p:g}'],
                                   np.mean((y >= lo) & (y <= hi)), atol=5e-7)  # %.6f
        np.testing.assert_allclose(got[f'width_{100 * p:g}'], np.mean(hi - lo), atol=1e-6)
      np.testing.assert_allclose(
          got['crps'], np.mean([_crps_by_quadrature(*a) for a in zip(y, mu, s)]),
          rtol=1e-3, atol=1e-6)
      np.testing.assert_allclose(got['sigma_spearman'], stats.spearmanr(
          s, g[f'{d}_annotator_std']).statistic, atol=1e-6)
      # Sigma scaling: the factor that makes the validation NLL smallest, i.e. the
      # scaled validation z-scores have mean square 1; the unscaled NLL is reported too.
      c = got['sigma_scale']
      assert c == pytest.approx(scale[d], rel=1e-5)
      if split == 'validation':
        assert np.mean(((y - mu) / s) ** 2) == pytest.approx(1.0, rel=1e-3)
      np.testing.assert_allclose(got['nll_unscaled'],
                                 -stats.norm.logpdf(y, mu, s / c).mean(), rtol=1e-3, atol=1e-4)
      rows = long[(long.split == split) & (long.dimension == d)].set_index('metric').value
      np.testing.assert_allclose(rows['nll'], got['nll'], atol=1e-6)  # Also in metrics.csv.
      assert 'r2' in rows
    assert results['test'][d]['coverage_90'] == pytest.approx(
        table[(table.split == 'test') & (table.dimension == d)
              & (table.metric == 'coverage_90')].value.iloc[0], abs=1e-6)
  text = open(os.path.join(folder, 'metrics.md')).read()
  assert '## Uncertainty' in text and 'cover 90%' in text
  with open(os.path.join(folder, 'calibration.png'), 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  hist = pd.read_csv(os.path.join(folder, 'history.csv'))
  assert {'val_nll', 'val_valence_coverage_90', 'val_arousal_r2'} <= set(hist.columns)
  assert len(hist) == 3 and np.isfinite(hist.to_numpy(np.float64)).all()


def test_prediction_gives_sigma_intervals_and_window_spread(gaussian_run, tmp_path):
  import soundfile as sf
  from scipy import special

  from mer_jax import predict, predict_batch
  from tests.conftest import tiny_songs
  config, workdir, _ = gaussian_run
  predictor = predict.Predictor.from_workdir(workdir)
  preds = pd.read_csv(os.path.join(workdir, 'report', 'predictions.csv'),
                      dtype={'song_id': str}).set_index('song_id')
  songs = tiny_songs(config)
  sid = preds[preds.split == 'test'].index[0]
  # The window training used: the report's mean and sigma for that song.
  res = predict.predict_song(predictor, songs.audio[sid], lyrics_text=songs.lyrics[sid],
                             hop_s=None)
  z = special.ndtri(0.95)
  for d in ('valence', 'arousal'):
    assert res[d] == pytest.approx(preds.loc[sid, f'{d}_pred'], abs=2e-3)
    assert res[f'{d}_std'] == pytest.approx(preds.loc[sid, f'{d}_sigma'], rel=2e-2)
    assert res[f'{d}_low90'] == pytest.approx(max(res[d] - z * res[f'{d}_std'], 0), abs=1e-9)
    assert res[f'{d}_high90'] == pytest.approx(min(res[d] + z * res[f'{d}_std'], 1), abs=1e-9)
    assert f'{d}_window_spread' not in res  # One window.
  # A song three windows long: sigma from the windows' variances, spread apart.
  y, sr = sf.read(songs.audio[sid])
  long = tmp_path / 'long.wav'
  sf.write(long, np.concatenate([y, y[::-1], 0.5 * y]), sr)
  res = predict.predict_song(predictor, str(long), lyrics_text=songs.lyrics[sid],
                             hop_s=1.0, per_window=True)
  w = pd.DataFrame(res['per_window'])
  assert res['windows'] == len(w) > 2
  for d in ('valence', 'arousal'):
    assert res[d] == pytest.approx(w[d].mean(), abs=1e-6)
    assert res[f'{d}_std'] == pytest.approx(np.sqrt(np.mean(w[f'{d}_std'] ** 2)), rel=1e-5)
    assert res[f'{d}_window_spread'] == pytest.approx(w[d].std(ddof=0), abs=1e-6)
  text = predict._describe({**res, 'audio': str(long)}, predictor)
  assert '±' in text and '90% interval' in text and 'across windows' in text
  # Many songs: the CSV carries the uncertainty columns, without NaN.
  items = [predict_batch.Item(s, songs.audio[s]) for s in preds.index[:2]]
  for i in items:
    (tmp_path / f'{i.song_id}.txt').write_text(songs.lyrics[i.song_id])
  items = [predict_batch.Item(i.song_id, i.audio_path, str(tmp_path / f'{i.song_id}.txt'))
           for i in items]
  out = tmp_path / 'preds.csv'
  assert predict_batch.predict_many(predictor, items, str(out))['done'] == 2
  rows = pd.read_csv(out)
  for c in ('valence_std', 'arousal_std', 'valence_low90', 'arousal_high90'):
    assert c in rows and rows[c].notna().all()
  # The notebooks' view of a prepared split.
  df = predict.predict_prepared(predictor, 'test')
  np.testing.assert_allclose(df.valence_sigma.to_numpy(),
                             preds.loc[df.song_id, 'valence_sigma'].to_numpy(), rtol=1e-4)

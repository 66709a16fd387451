"""Training system: end to end, determinism, resume (SIGKILL: tests/test_drills.py), data
parallelism, early stopping, NaN guard, frozen vs fine-tuned text tower."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from mer_jax import input_pipeline, optim, train
from tests.conftest import tiny_config

EPOCHS = 6


@pytest.fixture(scope='session')
def reference_run(tiny_prepared, tiny_root, tmp_path_factory):
  """One uninterrupted tiny run: (config, workdir, results)."""
  config = tiny_config(tiny_root)
  config.train.num_epochs = EPOCHS
  workdir = str(tmp_path_factory.mktemp('reference'))
  return config, workdir, train.train_and_evaluate(config, workdir)


def _report(workdir, name):
  return pd.read_csv(os.path.join(workdir, 'report', name))


def test_end_to_end_report(reference_run):
  config, workdir, results = reference_run
  report = os.path.join(workdir, 'report')
  for f in ('metrics.csv', 'metrics.md', 'predictions.csv', 'history.csv',
            'pred_vs_true.png', 'va_distribution.png', 'learning_curves.png'):
    assert os.path.getsize(os.path.join(report, f)) > 0, f
  hist = _report(workdir, 'history.csv')
  assert len(hist) == EPOCHS
  assert hist.train_loss.iloc[-1] < 0.7 * hist.train_loss.iloc[0]
  m = _report(workdir, 'metrics.csv')
  assert set(m.split) == {'train', 'validation', 'test'}
  assert set(m.dimension) == {'valence', 'arousal'}
  assert set(m.metric) == {'mse', 'rmse', 'mae', 'r2'}
  assert len(m) == 3 * 2 * 4 and np.isfinite(m.value).all()
  preds = _report(workdir, 'predictions.csv')
  assert len(preds) == 40 and preds.song_id.is_unique  # Every song, no dropped batch.
  # The test predictions are the best checkpoint's outputs on each song's audio and
  # lyrics, featurised from the files (not the TFRecords); metrics by scikit-learn.
  from sklearn import metrics as skm
  from mer_jax import predict
  from tests.conftest import tiny_songs
  songs = tiny_songs(config)
  predictor = predict.Predictor.from_workdir(workdir)
  test = preds[preds.split == 'test']
  for sid, v, a in zip(test.song_id, test.valence_pred, test.arousal_pred):
    got = predictor.predict(songs.loc[sid, 'audio'], songs.loc[sid, 'lyrics'], hop_s=None)
    assert (got['valence'], got['arousal']) == pytest.approx((v, a), abs=1e-5), sid
  for d in ('valence', 'arousal'):
    row = m[(m.split == 'test') & (m.dimension == d) & (m.metric == 'r2')]
    assert row.value.iloc[0] == pytest.approx(
        skm.r2_score(test[f'{d}_true'], test[f'{d}_pred']), rel=1e-4, abs=1e-5)
  row = m[(m.split == 'test') & (m.dimension == 'arousal') & (m.metric == 'rmse')]
  assert math.isclose(results['test']['arousal']['rmse'], row.value.iloc[0], rel_tol=1e-5)
  test = preds[preds.split == 'test']
  assert math.isclose(results['test']['valence']['mae'],
                      np.mean(np.abs(test.valence_pred - test.valence_true)), rel_tol=1e-4)
  # TensorBoard event files and the saved config are in the workdir.
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  assert os.path.isfile(os.path.join(workdir, 'config.json'))


def test_same_seed_gives_identical_metrics(reference_run, tmp_path):
  config, workdir, _ = reference_run
  train.train_and_evaluate(config, str(tmp_path / 'again'))
  for f in ('metrics.csv', 'predictions.csv', 'history.csv'):
    pd.testing.assert_frame_equal(_report(workdir, f), _report(str(tmp_path / 'again'), f))


def test_rerun_on_finished_workdir_resumes_without_training(reference_run):
  config, workdir, results = reference_run
  again = train.train_and_evaluate(config, workdir)
  assert again == results


def test_resume_with_another_config_is_refused(reference_run):
  config, workdir, _ = reference_run
  other = config.copy_and_resolve_references()
  other.train.learning_rate = 1e-2
  with pytest.raises(ValueError, match='train.learning_rate'):
    train.train_and_evaluate(other, workdir)


def test_two_devices_match_one(dp_runs):
  one, two = dp_runs(1, 'fusion'), dp_runs(2, 'fusion')
  assert one.pop('devices') == 1 and two.pop('devices') == 2
  assert one.keys() == two.keys()
  for k in one:
    np.testing.assert_allclose(two[k], one[k], atol=1e-5, rtol=1e-5, err_msg=k)
  assert one['losses'][-1] != one['losses'][0]


def test_early_stopping_epoch_on_scripted_curve(monkeypatch, tiny_prepared, tiny_root,
                                               tmp_path):
  curve = [0.9, 0.5, 0.4, 0.41, 0.40005, 0.45, 0.39, 0.5, 0.6, 0.7, 0.8, 0.9]
  patience, min_delta = 2, 1e-3
  # Independent expectation: stop at the first epoch that ends a run of patience + 1
  # epochs without an improvement > min_delta over the best so far.
  best, since, expected = math.inf, 0, len(curve)
  for i, v in enumerate(curve):
    if best - v > min_delta:
      best, since = v, 0
    else:
      since += 1
    if since > patience:
      expected = i + 1
      break
  assert expected == 6
  calls = iter(curve)
  real = train.evaluate

  def scripted(*args, **kwargs):
    preds, summary = real(*args, **kwargs)
    # Validation each epoch, then final predictions; 'selection' drives the stopping.
    summary['loss'] = summary['selection'] = next(calls, 1.0)
    return preds, summary

  monkeypatch.setattr(train, 'evaluate', scripted)
  config = tiny_config(tiny_root)
  config.train.num_epochs = len(curve)
  config.train.early_stopping = True
  config.train.early_stopping_patience = patience
  config.train.early_stopping_min_delta = min_delta
  workdir = str(tmp_path / 'es')
  train.train_and_evaluate(config, workdir)
  hist = _report(workdir, 'history.csv')
  assert len(hist) == expected
  np.testing.assert_allclose(hist.val_loss, curve[:expected])


def test_reduce_on_plateau_scales_learning_rate():
  config = tiny_config('/unused')
  config.train.plateau_patience = 1
  config.train.plateau_factor = 0.5
  config.train.plateau_min_delta = 1e-6
  state = optim.plateau(config).init({})
  scales = []
  for v in [1.0, 0.8, 0.9, 0.7, 0.75, 0.76]:
    state = optim.plateau_step(config, state, v)
    scales.append(float(state.scale))
  assert scales == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]
  # The jitted step is optax's own update, value for value, on other losses.
  config.train.plateau_patience = 2
  tx, ours = optim.plateau(config), optim.plateau(config).init({})
  theirs = ours
  for v in np.random.default_rng(0).uniform(0.5, 1.0, 12):
    ours = optim.plateau_step(config, ours, v)
    theirs = tx.update(updates={}, state=theirs, value=jnp.asarray(v, jnp.float32))[1]
    assert all(np.asarray(a).tolist() == np.asarray(b).tolist()
               for a, b in zip(ours, theirs)), (ours, theirs)
  assert float(ours.scale) < 1.0  # The losses did trigger reductions.


def test_nan_loss_stops_at_its_step_and_keeps_checkpoints(monkeypatch, tiny_prepared,
                                                          tiny_root, tmp_path):
  real = input_pipeline.train_batches

  def poisoned(ds, num, batch_size, seed, epoch, rows=None):
    for i, batch in enumerate(real(ds, num, batch_size, seed, epoch, rows)):
      if epoch == 1 and i == 0:
        batch = {**batch, 'mel': np.full_like(batch['mel'], np.nan)}
      yield batch

  monkeypatch.setattr(input_pipeline, 'train_batches', poisoned)
  config = tiny_config(tiny_root)
  workdir = str(tmp_path / 'nan')
  steps_per_epoch = 28 // config.train.batch_size
  with pytest.raises(FloatingPointError, match=f'at step {steps_per_epoch + 1}:'):
    train.train_and_evaluate(config, workdir)
  steps = sorted(int(d) for d in os.listdir(os.path.join(workdir, 'checkpoints'))
                 if d.isdigit())
  assert steps == [steps_per_epoch]
  monkeypatch.setattr(input_pipeline, 'train_batches', real)
  from mer_jax import checkpointing
  ckpt = checkpointing.Checkpointer(workdir)
  meta = ckpt.restore_meta(steps_per_epoch)
  assert meta['epoch'] == 1 and np.isfinite(meta['history'][0]['train_loss'])


def test_frozen_tower_is_outside_the_optimizer(reference_run, tiny_prepared):
  config, workdir, _ = reference_run
  from mer_jax import bert
  # The lyrics features used in training are the pretrained tower's, unchanged.
  _, builder = tiny_prepared
  cached = input_pipeline.lyrics_embeddings(builder, config)
  exs = list(builder.as_dataset(split='test').take(4).as_numpy_iterator())
  bert_config, params = bert.load_bert(config.text.encoder)
  fresh = bert.embed(bert.TextTower(bert_config, pooling=config.text.pooling), params,
                     np.stack([e['token_ids'] for e in exs]),
                     np.stack([e['attention_mask'] for e in exs]))
  np.testing.assert_allclose(np.stack([cached[e['song_id']] for e in exs]), fresh,
                             atol=1e-5)
  from mer_jax import checkpointing, tasks
  ckpt = checkpointing.Checkpointer(workdir)
  step = ckpt.latest_step()
  restored = ckpt.restore_raw(step)
  leaves = jax.tree.leaves(restored)
  # No tensor of the text tower (its word embeddings are [30522, 384]) is trained.
  assert not any(getattr(x, 'shape', None) == (30522, 384) for x in leaves)
  assert 'text' not in restored['params']
  assert tasks.input_keys(config) == ('mel', 'lyrics_emb')


def test_fine_tuned_local_bert_end_to_end(tiny_prepared, tiny_root, tiny_bert_dir,
                                          tmp_path):
  from mer_jax import bert, checkpointing
  config = tiny_config(tiny_root)
  config.text.encoder = tiny_bert_dir
  config.text.trainable = True
  config.text.learning_rate = 1e-3
  config.text.warmup_steps = 2
  config.train.num_epochs = 2
  workdir = str(tmp_path / 'ft')
  results = train.train_and_evaluate(config, workdir)
  assert np.isfinite(results['test']['valence']['rmse'])
  ckpt = checkpointing.Checkpointer(workdir)
  saved = ckpt.restore_raw(ckpt.latest_step())
  _, pretrained = bert.load_bert(tiny_bert_dir)
  tuned = saved['params']['text']['bert']
  diffs = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                       tuned, pretrained)
  assert max(jax.tree.leaves(diffs)) > 0  # The unfrozen tower was trained.
  meta = ckpt.restore_meta(ckpt.latest_step())
  assert meta['preprocessing']['encoder_identity']['encoder'] == tiny_bert_dir
  assert meta['preprocessing']['max_power'] > 0


def test_resume_allows_changes_that_keep_the_numbers(reference_run):
  config, workdir, results = reference_run
  other = config.copy_and_resolve_references()
  other.sweep.seeds = (0, 1, 2, 3)
  other.data.num_workers = 2
  assert train.train_and_evaluate(other, workdir) == results


def test_initial_state_holds_the_default_inits_parameters(tmp_path, xla_optimized):
  """create_train_state compiles a model's init at LLVM -O1 (models.init_variables)
  without the fine-tuned text tower's random values (replaced by its pretrained ones):
  5-10 s less per run. Its parameters and BatchNorm statistics are bit for bit those of
  `jax.jit(model.init)` under XLA's defaults (the text tower: the pretrained ones), for
  every kind of layer the fusion models have (3x3 convolutions, BatchNorm, Dense, a BERT
  tower's embeddings, attention and LayerNorm; one of each, as each compiles for seconds
  at -O3). Checked with XLA's optimisations on (`xla_optimized`), as a user runs. (At
  -O0 it fails: 3 of 64 values differ.)"""
  import functools

  from transformers import BertConfig
  from mer_jax import tasks
  config = tiny_config(str(tmp_path))
  config.model.audio.widths = (4,)
  config.text.trainable = True
  model = tasks.create_model(config, BertConfig(
      hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
      max_position_embeddings=16, vocab_size=50))
  rng = np.random.default_rng(0)
  inputs = {'mel': rng.normal(size=(2, config.audio.n_mels, config.audio.num_frames)),
            'token_ids': rng.integers(0, 50, (2, 12)), 'attention_mask': np.ones((2, 12))}
  inputs = {k: inputs[k].astype(np.int32 if k != 'mel' else np.float32)
            for k in tasks.input_keys(config)}
  key = jax.random.key(int(rng.integers(1 << 30)))
  want = jax.jit(functools.partial(model.init, train=False))({'params': key}, inputs)
  pretrained = jax.tree.map(lambda x: x + 1.0, want['params']['text']['bert'])
  state = train.create_train_state(config, model, key, inputs, 10, pretrained)
  want = {'params': {**want['params'], 'text': {'bert': pretrained}},
          'batch_stats': want['batch_stats']}
  ours = {'params': state.params, 'batch_stats': state.batch_stats}
  assert jax.tree.structure(ours) == jax.tree.structure(want)
  assert {'audio', 'text'} <= set(want['params'])
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(want)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_lyrics_longer_than_the_encoders_positions_are_refused(tiny_bert_dir, tmp_path):
  """tiny_bert_dir has 64 position embeddings: 65-token lyrics would embed to NaN, so
  training refuses them in one line before preparing anything; 64 passes the check."""
  config = tiny_config(str(tmp_path))
  config.text.encoder = tiny_bert_dir
  config.text.max_length = 65
  with pytest.raises(ValueError, match=r'max_length = 65 exceeds the 64 position '
                                       r'embeddings .*: set config.text.max_length <= 64'):
    train.train_and_evaluate(config, str(tmp_path / 'work'))
  assert not os.path.exists(config.data.data_dir)
  config.text.max_length = 64
  train.check_config(config)
  config.text.max_length = 65
  config.model.modality = 'audio'  # No lyrics tower: nothing to refuse.
  train.check_config(config)

"""Experiment 3 end to end on the tiny dataset; the analysis against numpy/pandas."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mer_jax import congruence, metrics
from mer_jax.jobs import exp3


def _summary(workdir):
  df = pd.read_csv(os.path.join(workdir, 'report', 'exp3_summary.csv'))
  assert list(df.columns) == ['metric', 'value']
  return df.set_index('metric').value


def test_exp3_writes_every_report_file(exp3_run):
  _, workdir, summary = exp3_run
  report = os.path.join(workdir, 'report')
  for f in ('exp3_summary.csv', 'exp3.md', 'congruence_bins.csv', 'exp3_songs.csv',
            'congruence_hist.png', 'congruence_vs_error.png', 'error_by_congruence.png'):
    assert os.path.getsize(os.path.join(report, f)) > 0, f
  s = _summary(workdir)
  for k in ('a2l_r1', 'a2l_r5', 'a2l_r10', 'l2a_r1', 'a2l_median_rank',
            'l2a_median_rank', 'random_r1', 'random_median_rank', 'matched_auc',
            'incongruent_auc', 'pearson_r_combined', 'spearman_p_valence',
            'plain_valence_r2', 'gated_arousal_ccc'):
    assert k in s.index, k
  # Recall@1 from the test songs' embeddings by hand, in the CSV and the returned dict.
  with np.load(os.path.join(workdir, 'siamese', 'report', 'embeddings.npz')) as z:
    sel = z['split'] == 'test'
    sim = z['audio'][sel].astype(np.float64) @ z['lyrics'][sel].astype(np.float64).T
  r1 = np.mean(np.argmax(sim, axis=1) == np.arange(len(sim)))
  assert s['a2l_r1'] == pytest.approx(r1, abs=1e-9) == summary['a2l_r1']
  md = open(os.path.join(report, 'exp3.md')).read()
  assert 'Plain vs congruence-gated fusion' in md and '| gated | valence |' in md
  # The gated variant is the Exp 1 run's config with the gate on.
  with open(os.path.join(workdir, 'gated', 'config.json')) as f:
    gated = json.load(f)['config']
  with open(os.path.join(workdir, 'exp1', 'config.json')) as f:
    plain = json.load(f)['config']
  assert gated['model']['fusion'].pop('congruence_gate') and not plain['model'][
      'fusion'].pop('congruence_gate')
  assert gated['model'].pop('congruence_workdir') == os.path.join(workdir, 'siamese')
  plain['model'].pop('congruence_workdir')
  assert gated['model'].pop('congruence_file').endswith('congruence_crossfit.csv')
  assert plain['model'].pop('congruence_file') == ''
  assert gated['model'] == plain['model'] and gated['train'] == plain['train']


def test_exp3_numbers_match_an_independent_recomputation(exp3_run):
  config, workdir, _ = exp3_run
  s = _summary(workdir)
  cong = pd.read_csv(os.path.join(workdir, 'siamese', 'report', 'congruence.csv'),
                     dtype={'song_id': str})
  preds = pd.read_csv(os.path.join(workdir, 'exp1', 'report', 'predictions.csv'),
                      dtype={'song_id': str})
  test = cong[cong.split == 'test'].merge(preds[preds.split == 'test'], on='song_id')
  assert len(test) == s['n_test'] == (preds.split == 'test').sum()
  ev = np.abs(test.valence_pred - test.valence_true).to_numpy()
  ea = np.abs(test.arousal_pred - test.arousal_true).to_numpy()
  c = test.congruence.to_numpy()
  n = len(c)
  for name, err in (('valence', ev), ('arousal', ea), ('combined', np.sqrt(ev ** 2 + ea ** 2))):
    r = np.corrcoef(c, err)[0, 1]
    t = r * np.sqrt((n - 2) / (1 - r ** 2))
    assert s[f'pearson_r_{name}'] == pytest.approx(r, abs=1e-6)
    assert s[f'pearson_p_{name}'] == pytest.approx(2 * stats.t.sf(abs(t), n - 2), abs=1e-6)
    rho = pd.Series(c).rank().corr(pd.Series(err).rank())
    assert s[f'spearman_rho_{name}'] == pytest.approx(rho, abs=1e-6)
  # Error by congruence bin: songs sorted by congruence, cut into equal-count bins.
  bins = pd.read_csv(os.path.join(workdir, 'report', 'congruence_bins.csv'))
  assert bins.n.sum() == n and len(bins) == config.exp3.num_bins
  order = np.argsort(c, kind='stable')
  start = 0
  for b in bins.itertuples():
    idx = order[start:start + b.n]
    assert b.valence_mae == pytest.approx(ev[idx].mean(), abs=1e-6)
    assert b.congruence_min == pytest.approx(c[idx].min(), abs=1e-6)
    start += b.n
  # Retrieval over the test songs' embeddings, by sorting.
  with np.load(os.path.join(workdir, 'siamese', 'report', 'embeddings.npz')) as z:
    sel = z['split'] == 'test'
    sim = z['audio'][sel] @ z['lyrics'][sel].T
  ranks = [1 + int(np.sum(row > row[i])) for i, row in enumerate(sim)]
  assert s['a2l_median_rank'] == pytest.approx(np.median(ranks))
  assert s['a2l_r5'] == pytest.approx(np.mean(np.array(ranks) <= 5))
  labelled = test[test.congruent >= 0]
  want = metrics.separation_auc(labelled.congruence, labelled.congruent == 1)
  assert (np.isnan(s['incongruent_auc']) and np.isnan(want)) or (
      s['incongruent_auc'] == pytest.approx(want, abs=1e-6))
  # Plain fusion row = the Exp 1 run's own report.
  own = pd.read_csv(os.path.join(workdir, 'exp1', 'report', 'metrics.csv'))
  r2 = own[(own.split == 'test') & (own.dimension == 'valence') & (own.metric == 'r2')]
  assert s['plain_valence_r2'] == pytest.approx(float(r2.value.iloc[0]), abs=1e-5)


def test_exp3_reuses_a_given_exp1_run_and_resumes(exp3_run, tmp_path):
  """A second Exp 3 pointing at the first's Exp 1 run trains no fusion model of its
  own; re-running finished runs only re-evaluates them."""
  config, workdir, first = exp3_run
  config = config.copy_and_resolve_references()
  config.exp3.exp1_workdir = os.path.join(workdir, 'exp1')
  config.exp3.gated = False
  out = str(tmp_path / 'again')
  os.makedirs(out)
  os.symlink(os.path.join(workdir, 'siamese'), os.path.join(out, 'siamese'))
  second = exp3.run(config, out).summary
  assert not os.path.exists(os.path.join(out, 'exp1'))
  assert not os.path.exists(os.path.join(out, 'gated'))
  for k in ('a2l_r1', 'matched_auc', 'pearson_r_combined', 'plain_valence_r2'):
    assert second[k] == pytest.approx(first[k], abs=1e-6), k
  assert 'gated_valence_r2' not in second


def test_errors_frame_rejects_runs_on_different_songs(tmp_path):
  for name, ids in (('exp1', ['a', 'b']), ('siamese', ['a', 'c'])):
    os.makedirs(tmp_path / name / 'report')
  pd.DataFrame({'song_id': ['a', 'b'], 'split': 'test', 'quadrant': 'Q1',
                'valence_true': 0.5, 'valence_pred': 0.5, 'arousal_true': 0.5,
                'arousal_pred': 0.5}).to_csv(tmp_path / 'exp1/report/predictions.csv')
  pd.DataFrame({'song_id': ['a', 'c'], 'split': 'test', 'congruent': 1,
                'congruence': 0.3}).to_csv(tmp_path / 'siamese/report/congruence.csv')
  with pytest.raises(ValueError, match='same prepared dataset'):
    congruence.errors_frame(str(tmp_path / 'exp1'), str(tmp_path / 'siamese'))
  with pytest.raises(FileNotFoundError, match='no finished run'):
    congruence.errors_frame(str(tmp_path / 'nothing'), str(tmp_path / 'siamese'))


def test_siamese_audio_tower_starts_from_the_exp1_model(exp3_run):
  import jax

  from mer_jax import checkpointing, tasks, train
  config, workdir, _ = exp3_run
  exp1_dir = os.path.join(workdir, 'exp1')
  c = exp3.siamese_config(config, exp1_dir)
  assert c.model.init_audio_from == exp1_dir and c.task == 'siamese'
  x = {'mel': np.zeros((2, 128, 128), np.float32),
       'lyrics_emb': np.zeros((2, 384), np.float32)}
  state = train.create_train_state(c, tasks.create_model(c), jax.random.key(5), x, 10)
  warm = train.warm_start_audio(state, exp1_dir)
  _, saved = checkpointing.restore_best(exp1_dir)
  for a, b in zip(jax.tree.leaves(warm.params['audio']),
                  jax.tree.leaves(saved['params']['audio'])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  for a, b in zip(jax.tree.leaves(warm.batch_stats['audio']),
                  jax.tree.leaves(saved['batch_stats']['audio'])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # The rest is untouched; another tower shape is refused.
  np.testing.assert_array_equal(warm.params['lyrics_proj_out']['kernel'],
                                state.params['lyrics_proj_out']['kernel'])
  c.model.audio.widths = (4, 8, 8, 32)
  other = train.create_train_state(c, tasks.create_model(c), jax.random.key(5), x, 10)
  with pytest.raises(ValueError, match='audio tower does not match'):
    train.warm_start_audio(other, exp1_dir)


def test_gate_trains_on_cross_fitted_congruence(exp3_run, tiny_prepared):
  """Each training song's congruence comes from the fold model that did not train on
  it (checked by predicting the song's audio and lyrics with that model); validation
  and test songs from the full Siamese model; the gated run used that table."""
  from sklearn.model_selection import KFold
  from mer_jax import predict
  from tests.conftest import tiny_songs
  config, workdir, summary = exp3_run
  folds = config.exp3.congruence_folds
  table = pd.read_csv(os.path.join(workdir, 'siamese_folds', 'congruence_crossfit.csv'),
                      dtype={'song_id': str})
  full = pd.read_csv(os.path.join(workdir, 'siamese', 'report', 'congruence.csv'),
                     dtype={'song_id': str})
  train_ids = sorted(full.song_id[full.split == 'train'])
  assert sorted(table.song_id[table.split == 'train']) == train_ids
  other = table[table.split != 'train'].merge(full, on=['song_id', 'split'])
  assert len(other) == (full.split != 'train').sum() and (other.source == 'full model').all()
  np.testing.assert_allclose(other.congruence_x, other.congruence_y, atol=1e-6)
  # The folds, independently: scikit-learn's seeded KFold over the sorted ids.
  held = {ids: k for k, (_, idx) in enumerate(KFold(folds, shuffle=True, random_state=(
      config.data.split_seed)).split(train_ids)) for ids in np.array(train_ids)[idx]}
  songs = tiny_songs(config)
  for k in range(folds):
    fold_dir = os.path.join(workdir, 'siamese_folds', f'fold{k}')
    own = pd.read_csv(os.path.join(fold_dir, 'report', 'congruence.csv'),
                      dtype={'song_id': str})
    assert sorted(own.song_id[own.split == 'train']) == sorted(
        i for i in train_ids if held[i] != k)  # Never trained on its fold.
    mine = table[table.source == f'fold {k}']
    assert sorted(mine.song_id) == sorted(i for i in train_ids if held[i] == k)
    model = predict.Predictor.from_workdir(fold_dir)
    for sid, c in list(zip(mine.song_id, mine.congruence))[:3]:
      got = model.predict(songs.loc[sid, 'audio'], songs.loc[sid, 'lyrics'], hop_s=None)
      assert got['congruence'] == pytest.approx(c, abs=1e-4)
  with open(os.path.join(workdir, 'gated', 'config.json')) as f:
    gated = json.load(f)['config']
  assert gated['model']['congruence_file'] == os.path.join(
      workdir, 'siamese_folds', 'congruence_crossfit.csv')
  s = _summary(workdir)
  assert s['congruence_folds'] == folds
  assert s['train_congruence_gate_mean'] == pytest.approx(
      table.congruence[table.split == 'train'].mean(), abs=1e-6)
  assert s['train_congruence_insample_mean'] == pytest.approx(
      full.congruence[full.split == 'train'].mean(), abs=1e-6)
  md = open(os.path.join(workdir, 'report', 'exp3.md')).read()
  assert 'The gate trained on **cross-fitted** congruence: 2 Siamese models' in md

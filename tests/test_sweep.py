"""Sweep runner and experiment report on the tiny synthetic dataset."""

import os

import ml_collections
import numpy as np
import pandas as pd
import pytest

from mer_jax import results
from mer_jax.jobs import sweep
from tests.conftest import tiny_config


@pytest.fixture(scope='module')
def tiny_sweep(tiny_prepared, tiny_root, tiny_bert_dir, tmp_path_factory):
  config = tiny_config(tiny_root)
  config.text.encoder = tiny_bert_dir  # A 2-layer BERT keeps Model 5 quick.
  config.job = 'sweep'
  config.train.num_epochs = 2
  config.sweep.models = ('model1', 'model5')
  config.sweep.seeds = (0, 1)
  config.sweep.ablation_model = 'model4'
  config.sweep.ablation_modalities = ('audio',)
  config.sweep.n_bootstrap = 200
  workdir = str(tmp_path_factory.mktemp('sweep'))
  summary = sweep.run(config, workdir).summary
  return config, workdir, summary


def test_runs_and_run_configs():
  config = tiny_config('/unused')
  config.sweep.models = ('model1', 'model5')
  config.sweep.seeds = (0, 1)
  config.sweep.ablation_model = 'model1'
  config.sweep.ablation_modalities = ('audio', 'bimodal')
  names = [r.name for r in sweep.runs(config)]
  assert names == ['model1-bimodal-seed0', 'model1-bimodal-seed1', 'model5-bimodal-seed0',
                   'model5-bimodal-seed1', 'model1-audio-seed0', 'model1-audio-seed1']
  c = sweep.run_config(config, sweep.Run('model5', 'bimodal', 1))
  assert c.seed == 1 and c.text.trainable and c.model.audio.convs_per_block == 1
  assert c.model.audio.widths == config.model.audio.widths  # Sizes come from the experiment.
  c = sweep.run_config(config, sweep.Run('model5', 'audio', 0))
  assert not c.text.trainable and c.model.modality == 'audio'


def test_report_files_and_values(tiny_sweep):
  config, workdir, summary = tiny_sweep
  assert len(summary['finished']) == 6 and summary['missing'] == []
  rep = os.path.join(workdir, 'report')
  for f in ('results.csv', 'results.md', 'quadrant.csv', 'quadrant_confusion.csv',
            'baselines.csv', 'baselines.md',
            'va_distribution.png', 'pred_vs_true.png', 'learning_curves.png',
            'error_by_quadrant.png'):
    assert os.path.getsize(os.path.join(rep, f)) > 0, f
  table = pd.read_csv(os.path.join(rep, 'results.csv'))
  assert list(table.columns) == ['model', 'dimension', 'metric', 'mean', 'std', 'ci_low',
                                 'ci_high', 'n_seeds', 'frontend']
  front = table.groupby('model').frontend.first()
  assert front['model1'] == 'VGG 4x8x8x16 (1 conv/block, attention none)'
  assert front['model4 (audio)'] == 'VGG 4x8x8x16 (2 conv/block, attention hidden)'
  assert set(table.model) == {'model1', 'model5', 'model4 (audio)'}
  assert len(table) == 3 * 2 * 6 and (table.n_seeds == 2).all()
  # Recompute cells from the runs' predictions with pandas and scikit-learn; the CIs by
  # replaying the bootstrap's resamples (numpy's generator seeded 0 draws [B, n] song
  # indices, the songs ordered by id; percentiles of the seed-mean metric).
  from sklearn import metrics as skm
  frames = []
  for seed in (0, 1):
    p = pd.read_csv(os.path.join(workdir, 'runs', f'model4-audio-seed{seed}', 'report',
                                 'predictions.csv'), dtype={'song_id': str})
    frames.append(p[p.split == 'test'].sort_values('song_id'))
  y = frames[0].arousal_true.to_numpy()
  preds = [f.arousal_pred.to_numpy() for f in frames]
  idx = np.random.default_rng(0).integers(0, len(y), (config.sweep.n_bootstrap, len(y)))
  for metric, fn in (('mae', skm.mean_absolute_error), ('r2', skm.r2_score)):
    per_seed = [fn(y, p) for p in preds]
    row = table[(table.model == 'model4 (audio)') & (table.dimension == 'arousal')
                & (table.metric == metric)].iloc[0]
    assert row['mean'] == pytest.approx(np.mean(per_seed), rel=1e-5)
    assert row['std'] == pytest.approx(np.std(per_seed, ddof=1), rel=1e-4, abs=1e-9)
    boot = [np.mean([fn(y[i], p[i]) for p in preds]) for i in idx]
    low, high = np.percentile(boot, [2.5, 97.5])
    assert (row['ci_low'], row['ci_high']) == pytest.approx((low, high), abs=1e-6)
  conf = pd.read_csv(os.path.join(rep, 'quadrant_confusion.csv'))
  n_test = len(y)
  assert (conf.groupby('model')['count'].sum() == 2 * n_test).all()  # 2 seeds.
  md = open(os.path.join(rep, 'results.md')).read()
  assert '| true \\ predicted | Q1 | Q2 | Q3 | Q4 |' in md
  assert '| Model | Dimension | MSE ↓ | RMSE ↓ | MAE ↓ | R² ↑ | r ↑ | CCC ↑ |' in md
  assert '## Baselines' in md and 'quadrant_centre' in md and 'All runs finished.' in md
  # Skill beyond the quadrant: the seeds' mean of each run's own report, and the verdict.
  skill = pd.read_csv(os.path.join(rep, 'quadrant_skill.csv'))
  own = [pd.read_csv(os.path.join(workdir, 'runs', f'model4-audio-seed{seed}', 'report',
                                  'quadrant_skill.csv')) for seed in (0, 1)]
  for d in ('valence', 'arousal'):
    want = np.mean([o[(o.split == 'test') & (o.dimension == d)
                      & (o.metric == 'skill_vs_quadrant')].value.iloc[0] for o in own])
    got = skill[(skill.model == 'model4 (audio)') & (skill.dimension == d)
                & (skill.metric == 'skill_vs_quadrant')]['mean'].iloc[0]
    assert got == pytest.approx(want, abs=2e-6)  # The runs' CSVs keep 6 decimals.
  best = skill[skill.metric == 'skill_vs_quadrant'].groupby('model')['mean'].mean().idxmax()
  assert f'The best model by skill, {best} (valence' in md


def test_rerun_skips_finished_and_reports_missing(tiny_sweep):
  config, workdir, _ = tiny_sweep
  done = os.path.join(workdir, 'runs', 'model1-bimodal-seed0', 'report', 'predictions.csv')
  mtime = os.stat(done).st_mtime_ns
  interrupted = os.path.join(workdir, 'runs', 'model5-bimodal-seed1')
  before = pd.read_csv(os.path.join(interrupted, 'report', 'metrics.csv'))
  import shutil
  shutil.rmtree(os.path.join(interrupted, 'report'))  # Checkpoints stay: it resumes.
  extra = sweep.Run('model2', 'bimodal', 0)
  summary = sweep.summarize(config, workdir, sweep.runs(config) + [extra])
  assert set(summary['missing']) == {extra.name, 'model5-bimodal-seed1'}
  md = open(os.path.join(workdir, 'report', 'results.md')).read()
  assert '2 run(s) missing' in md and 'model2-bimodal-seed0' in md
  summary = sweep.run(config, workdir).summary
  assert summary['missing'] == []
  assert os.stat(done).st_mtime_ns == mtime
  pd.testing.assert_frame_equal(
      before, pd.read_csv(os.path.join(interrupted, 'report', 'metrics.csv')))


def test_parallel_runs_write_the_same_results(tiny_sweep, tmp_path, capsys):
  """sweep.parallel_runs = 2: two seeds of Model 1, then (once they have ended) the best
  model's audio ablation, two at a time in the same two worker processes, write the
  same bytes as the same runs trained one after the other in this process."""
  config, workdir, _ = tiny_sweep
  config = ml_collections.ConfigDict(config.to_dict())
  config.sweep.models = ('model1',)
  config.sweep.ablation_model = 'best'  # Known after the main runs: model1.
  config.sweep.parallel_runs = 2
  summary = sweep.run(config, str(tmp_path)).summary
  assert sorted(summary['finished']) == ['model1-audio-seed0', 'model1-audio-seed1',
                                         'model1-bimodal-seed0', 'model1-bimodal-seed1']
  pids = set()
  for name in summary['finished']:
    if 'bimodal' in name:  # tiny_sweep trained these in turn.
      for f in ('metrics.csv', 'history.csv', 'predictions.csv'):
        got = tmp_path / 'runs' / name / 'report' / f
        assert got.read_bytes() == open(
            os.path.join(workdir, 'runs', name, 'report', f), 'rb').read(), (name, f)
    assert 'train: 100%' in (tmp_path / 'runs' / name / 'train.log').read_text()
    # TensorBoard's file names end in <pid>.<n>.v2: the process that trained the run.
    (events,) = (tmp_path / 'runs' / name).glob('events.out.tfevents.*')
    pids.add(int(events.name.split('.')[-3]))
  assert len(pids) == 2 and os.getpid() not in pids  # Both phases, the same workers.
  said = capsys.readouterr().out
  assert said.count('2 runs, 2 at a time') == 2
  assert sum(f'{n}: finished in ' in said for n in summary['finished']) == 4


def test_side_by_side_runs_never_start_two_seeds_of_one_model_together():
  R = sweep.Run
  todo = [R(m, mod, s) for m, mod in [('model1', 'bimodal'), ('model2', 'bimodal'),
                                      ('model5', 'bimodal'), ('model2', 'audio')]
          for s in (0, 1, 2)]
  order = [r.name for r in sweep.start_order(todo, 2)]
  assert order == [
      'model1-bimodal-seed0', 'model2-bimodal-seed0', 'model1-bimodal-seed1',
      'model2-bimodal-seed1', 'model1-bimodal-seed2', 'model2-bimodal-seed2',
      'model5-bimodal-seed0', 'model2-audio-seed0', 'model5-bimodal-seed1',
      'model2-audio-seed1', 'model5-bimodal-seed2', 'model2-audio-seed2']
  assert sweep.start_order(todo, 1) == todo
  assert sorted(sweep.start_order(todo[:7], 3), key=todo.index) == todo[:7]


def test_parallel_runs_refuse_several_jax_processes(tmp_path):
  config = tiny_config(str(tmp_path))
  config.job = 'sweep'
  config.sweep.parallel_runs = 2
  config.distributed.coordinator_address = 'localhost:1234'
  with pytest.raises(ValueError, match='with several JAX processes keep it 1'):
    sweep.run(config, str(tmp_path / 'work'))
  assert not (tmp_path / 'work' / 'runs').exists()


@pytest.mark.parametrize('value', [0, -2, True])  # ConfigDict refuses floats.
def test_parallel_runs_must_be_a_whole_number(tmp_path, value):
  config = tiny_config(str(tmp_path))
  config.job = 'sweep'
  config.sweep.parallel_runs = value
  with pytest.raises(ValueError, match='parallel_runs = .*whole number >= 1'):
    sweep.run(config, str(tmp_path / 'work'))
  assert not (tmp_path / 'work' / 'runs').exists()


def test_best_model_is_chosen_on_validation(tmp_path):
  config = tiny_config('/unused')
  config.sweep.models = ('model1', 'model2')
  config.sweep.seeds = (0, 1)
  config.sweep.ablation_model = 'best'
  config.sweep.ablation_modalities = ('audio',)
  assert [r.name for r in sweep.runs(config, str(tmp_path))][-2:] == [
      'best-audio-seed0', 'best-audio-seed1']
  val = {('model1', 0): 0.05, ('model1', 1): 0.03, ('model2', 0): 0.02, ('model2', 1): 0.07}
  for (model, seed), loss in val.items():
    rep = tmp_path / 'runs' / f'{model}-bimodal-seed{seed}' / 'report'
    rep.mkdir(parents=True)
    (rep / 'predictions.csv').write_text('song_id\n')
    pd.DataFrame({'epoch': [1, 2], 'val_loss': [0.5, loss]}).to_csv(
        rep / 'history.csv', index=False)
  assert sweep.best_model(config, str(tmp_path)) == 'model1'  # mean 0.04 < 0.045
  assert [r.name for r in sweep.runs(config, str(tmp_path))][-2:] == [
      'model1-audio-seed0', 'model1-audio-seed1']


@pytest.mark.parametrize('source', ['official', 'thresholds'])
def test_quadrant_table_uses_the_configured_true_quadrant(tmp_path, source):
  """quadrant.csv against scikit-learn, with official quadrants on some songs."""
  from sklearn import metrics as skm
  rng = np.random.default_rng()
  n, names = 40, np.array(['Q1', 'Q2', 'Q3', 'Q4'])
  q = lambda v, a: np.where(a >= .5, np.where(v >= .5, 0, 1), np.where(v >= .5, 3, 2))  # noqa: E731
  vt, at = rng.uniform(size=(2, n))
  official = np.where(rng.random(n) < 0.5, rng.integers(0, 4, n), -1)
  truth = np.where((official >= 0) & (source == 'official'), official, q(vt, at))
  runs, acc, f1 = [], [], []
  for seed in (0, 1):
    run = sweep.Run('model1', 'bimodal', seed)
    vp, ap = rng.uniform(size=(2, n))
    rep = tmp_path / 'runs' / run.name / 'report'
    rep.mkdir(parents=True)
    pd.DataFrame({'song_id': [f's{i}' for i in range(n)], 'split': 'test',
                  'quadrant': names[q(vt, at)],
                  'official_quadrant': np.where(official >= 0, names[official], ''),
                  'valence_true': vt, 'valence_pred': vp, 'arousal_true': at,
                  'arousal_pred': ap}).to_csv(rep / 'predictions.csv', index=False)
    runs.append(str(tmp_path / 'runs' / run.name))
    acc.append(skm.accuracy_score(truth, q(vp, ap)))
    f1.append(skm.f1_score(truth, q(vp, ap), average='macro'))
  _, quads, confusion = results.results_table({'model1': runs}, 20, source)
  assert quads.accuracy_mean.iloc[0] == pytest.approx(np.mean(acc), abs=1e-12)
  assert quads.macro_f1_mean.iloc[0] == pytest.approx(np.mean(f1), abs=1e-12)
  assert confusion[confusion.true == 'Q1']['count'].sum() == 2 * np.sum(truth == 0)

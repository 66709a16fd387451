"""Sweep runner and experiment report on the tiny synthetic dataset."""

import os

import numpy as np
import pandas as pd
import pytest

from mer_jax import results, sweep
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
  summary = sweep.run_sweep(config, workdir)
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
  assert c.seed == 1 and c.text.trainable and c.model.convs_per_block == 1
  assert c.model.widths == config.model.widths  # Sizes come from the experiment.
  c = sweep.run_config(config, sweep.Run('model5', 'audio', 0))
  assert not c.text.trainable and c.model.modality == 'audio'


def test_report_files_and_values(tiny_sweep):
  _, workdir, summary = tiny_sweep
  assert len(summary['finished']) == 6 and summary['missing'] == []
  rep = os.path.join(workdir, 'report')
  for f in ('results.csv', 'results.md', 'quadrant.csv', 'quadrant_confusion.csv',
            'baselines.csv', 'baselines.md',
            'va_distribution.png', 'pred_vs_true.png', 'learning_curves.png',
            'error_by_quadrant.png'):
    assert os.path.getsize(os.path.join(rep, f)) > 0, f
  table = pd.read_csv(os.path.join(rep, 'results.csv'))
  assert list(table.columns) == ['model', 'dimension', 'metric', 'mean', 'std', 'ci_low',
                                 'ci_high', 'n_seeds']
  assert set(table.model) == {'model1', 'model5', 'model4 (audio)'}
  assert len(table) == 3 * 2 * 6 and (table.n_seeds == 2).all()
  assert np.isfinite(table[['mean', 'std', 'ci_low', 'ci_high']]).all().all()
  assert (table.ci_low <= table.ci_high).all()
  # Recompute one cell from the runs' predictions with pandas.
  maes = []
  for seed in (0, 1):
    p = pd.read_csv(os.path.join(workdir, 'runs', f'model4-audio-seed{seed}', 'report',
                                 'predictions.csv'))
    p = p[p.split == 'test']
    maes.append((p.arousal_pred - p.arousal_true).abs().mean())
  row = table[(table.model == 'model4 (audio)') & (table.dimension == 'arousal')
              & (table.metric == 'mae')].iloc[0]
  assert row['mean'] == pytest.approx(np.mean(maes), rel=1e-5)
  assert row['std'] == pytest.approx(np.std(maes, ddof=1), rel=1e-4, abs=1e-9)
  conf = pd.read_csv(os.path.join(rep, 'quadrant_confusion.csv'))
  n_test = len(p)
  assert (conf.groupby('model')['count'].sum() == 2 * n_test).all()  # 2 seeds.
  md = open(os.path.join(rep, 'results.md')).read()
  assert '| true \\ predicted | Q1 | Q2 | Q3 | Q4 |' in md
  assert '| Model | Dimension | MSE ↓ | RMSE ↓ | MAE ↓ | R² ↑ | r ↑ | CCC ↑ |' in md
  assert '## Baselines' in md and 'quadrant_centre' in md and 'All runs finished.' in md


def test_rerun_skips_finished_and_reports_missing(tiny_sweep):
  config, workdir, _ = tiny_sweep
  done = os.path.join(workdir, 'runs', 'model1-bimodal-seed0', 'report', 'predictions.csv')
  mtime = os.stat(done).st_mtime_ns
  interrupted = os.path.join(workdir, 'runs', 'model5-bimodal-seed1')
  before = pd.read_csv(os.path.join(interrupted, 'report', 'metrics.csv'))
  import shutil
  shutil.rmtree(os.path.join(interrupted, 'report'))  # Checkpoints stay: it resumes.
  extra = sweep.Run('model2', 'bimodal', 0)
  summary = results.summarize(config, workdir, sweep.runs(config) + [extra])
  assert set(summary['missing']) == {extra.name, 'model5-bimodal-seed1'}
  md = open(os.path.join(workdir, 'report', 'results.md')).read()
  assert '2 run(s) missing' in md and 'model2-bimodal-seed0' in md
  summary = sweep.run_sweep(config, workdir)
  assert summary['missing'] == []
  assert os.stat(done).st_mtime_ns == mtime
  pd.testing.assert_frame_equal(
      before, pd.read_csv(os.path.join(interrupted, 'report', 'metrics.csv')))


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

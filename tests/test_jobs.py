"""Jobs, tasks and model variants are looked up by name; runs know when they finished."""

import json

import pytest

from configs import default
from mer_jax import jobs, runs, tasks, variants


def test_unknown_names_list_what_exists(tmp_path):
  config = default.get_config()
  config.job = 'trian'
  with pytest.raises(ValueError, match='the jobs are baselines, cross, dataset_report, ensemble, exp3, pretrain, probe, sweep, train'):
    jobs.run(config, str(tmp_path))
  config.task = 'regression'
  with pytest.raises(ValueError, match=r"config.task must be one of \('fusion', 'pretrain', 'siamese'\)"):
    tasks.get_task(config)
  with pytest.raises(ValueError, match='the variants are model1, model2'):
    variants.apply(config, 'model6')


def test_job_result_prints_its_lines_and_report():
  r = jobs.JobResult({'x': 1}, '/w/report/metrics.md', ('test valence R2 0.5',))
  assert r.describe() == 'test valence R2 0.5\nReport: /w/report/metrics.md'


def test_derive_copies_and_sets_dotted_fields():
  config = default.get_config()
  c = runs.derive(config, train__batch_size=4, **{'model.audio.out_dim': 3, 'job': 'x'})
  assert (c.train.batch_size, c.model.audio.out_dim, c.job) == (4, 3, 'x')
  assert (config.train.batch_size, config.model.audio.out_dim, config.job) == (16, 64,
                                                                               'train')


def test_is_finished_reads_the_mark_of_either_version(tmp_path):
  report = tmp_path / 'report'
  report.mkdir()
  (report / 'predictions.csv').write_text('song_id\n')
  assert runs.is_finished(str(tmp_path))  # A run saved before finished.json existed.
  (tmp_path / 'config.json').write_text(json.dumps({'run_format': runs.RUN_FORMAT}))
  assert not runs.is_finished(str(tmp_path))  # Today's run killed while reporting.
  runs.mark_finished(str(tmp_path), 12, {'test': {'valence': {'r2': 0.5}}})
  assert runs.is_finished(str(tmp_path))
  saved = json.loads((report / runs.FINISHED).read_text())
  assert saved == {'best_step': 12, 'results': {'test': {'valence': {'r2': 0.5}}}}

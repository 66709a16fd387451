"""Jobs, tasks and model variants are looked up by name; runs know when they finished."""

import json
import os

import pytest

from configs import default
from mer_jax import jobs, runs, tasks, variants

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def test_a_missing_release_is_reported_before_tensorflow_is_imported(tmp_path):
  """Every job that reads config.data (PREPARES_DATA) locates its release first: a
  wrong config.data.root is one line within a second or two, not after importing
  TensorFlow (~8 s of the ~10 s launch.py took). In a fresh process (this one has TF
  already); the flag is read from the source, as importing some jobs imports TF."""
  import subprocess
  import sys
  script = f'''
import importlib, json, sys
from configs import exp1
from data_prep.tables import DatasetNotFoundError
from mer_jax import jobs
seen, tf = {{}}, False
for name in jobs.names():
  config = exp1.get_config()
  config.job, config.data.root = name, {str(tmp_path / 'nowhere')!r}
  try:
    if importlib.util.find_spec('mer_jax.jobs.' + name).loader.get_source(
        'mer_jax.jobs.' + name).count('\\nPREPARES_DATA = True'):
      jobs.run(config, {str(tmp_path / 'w')!r})
  except DatasetNotFoundError as e:
    seen[name], tf = str(e), tf or 'tensorflow' in sys.modules
print(json.dumps({{'seen': seen, 'tensorflow': tf}}))
'''
  done = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True,
                        text=True, env={**os.environ, 'USE_TORCH': '0', 'USE_TF': '0'})
  assert done.returncode == 0, done.stderr[-3000:]
  out = json.loads(done.stdout.strip().splitlines()[-1])
  assert sorted(out['seen']) == ['baselines', 'dataset_report', 'exp3', 'pretrain',
                                 'probe', 'sweep', 'train']
  for message in out['seen'].values():
    assert message.startswith('MERGE bimodal_complete not found: looked for '
                              f'{tmp_path}/nowhere/MERGE_Bimodal_Complete/'), message
  assert not out['tensorflow']
  assert not os.path.exists(tmp_path / 'w')  # Nothing written.


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

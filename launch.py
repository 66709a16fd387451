"""Train and evaluate a model: python launch.py --config=configs/demo.py --workdir=runs/demo

Kept short on purpose: the logic lives in `mer_jax.train`, importable from a notebook.
"""

import os

os.environ.setdefault('HF_HUB_OFFLINE', '1')

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Training config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and the report.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # Heavy imports here: feature-extraction workers re-import this file (spawn).
  from mer_jax import baselines, cross, exp3, logs, sweep, train
  logs.quiet_library_logs()
  logging.info('config:\n%s', FLAGS.config)
  report_dir = os.path.abspath(os.path.join(FLAGS.workdir, 'report'))
  with logs.user_errors():
    if FLAGS.config.job == 'baselines':
      print(baselines.run(FLAGS.config, FLAGS.workdir).to_string(index=False))
      print(f'Report: {report_dir}/baselines.md (and baselines.csv)')
      return
    if FLAGS.config.job == 'cross':
      cross.run(FLAGS.config, FLAGS.workdir)
      print(f'Report: {report_dir}/cross_dataset.md (and cross_dataset.csv)')
      return
    if FLAGS.config.job == 'sweep':
      summary = sweep.run_sweep(FLAGS.config, FLAGS.workdir)
      print(f'{len(summary["finished"])} runs finished, {len(summary["missing"])} missing')
      print(f'Report: {report_dir}/results.md (and results.csv, baselines.csv, *.png)')
      return
    if FLAGS.config.job == 'exp3':
      s = exp3.run(FLAGS.config, FLAGS.workdir)
      print(f'test retrieval MRR {s["mrr"]:.3f} (random {s["random_mrr"]:.3f}), matched '
            f'AUC {s["matched_auc"]:.3f}, incongruent AUC '
            f'{s.get("incongruent_auc", float("nan")):.3f}; congruence vs combined '
            f'error: Spearman {s["spearman_rho_combined"]:.3f} '
            f'(p {s["spearman_p_combined"]:.2g})')
      print(f'Report: {report_dir}/exp3.md (and exp3_summary.csv, *.png)')
      return
    results = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
    if FLAGS.config.task == 'siamese':
      test = results.get('test', results['validation'])
      print(f'retrieval MRR {test["mrr"]:.3f} (random {test["random_mrr"]:.3f}), '
            f'audio->lyrics R@5 {test["a2l_r5"]:.3f}, matched AUC '
            f'{test["matched_auc"]:.3f}')
      print(f'Report: {report_dir}/retrieval.md (and congruence.csv, embeddings.npz)')
      return
  test = results.get('test', {})
  for dim, m in test.items():
    print(f'test {dim:8s} R2 {m["r2"]:.3f}  RMSE {m["rmse"]:.3f}  MAE {m["mae"]:.3f}')
  print(f'Report: {report_dir}/metrics.md (and metrics.csv, predictions.csv, *.png)')


if __name__ == '__main__':
  app.run(main)

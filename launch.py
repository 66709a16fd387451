"""Run a job: python launch.py --config=configs/demo.py --workdir=runs/demo

`config.job` names it (train, sweep, baselines, cross, exp3: `mer_jax.jobs`). Kept short
on purpose: the logic lives in the library, importable from a notebook.
"""

import os

if __name__ == '__main__':
  # glibc malloc settings for faster steps (why and how much: mer_jax/allocator.py);
  # restarts the process once, before any import. Opt out: set GLIBC_TUNABLES.
  from mer_jax import allocator
  allocator.reexec_with_tunables()

os.environ.setdefault('HF_HUB_OFFLINE', '1')
# transformers would import PyTorch and TensorFlow's Keras side when installed: neither
# is used (the input pipeline's tf.data is imported by us): seconds of every start.
os.environ.setdefault('USE_TORCH', '0')
os.environ.setdefault('USE_TF', '0')

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from mer_jax import logs  # noqa: E402  (light: absl only)

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Job config file.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and the report.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  from mer_jax import allocator, caches, jobs  # Heavy imports after the flags are parsed.
  allocator.run_on_calling_thread()  # Steps' temporaries from malloc's heap (why: there).
  logs.quiet_library_logs()
  caches.enable_compilation_cache()  # Runs of a sweep, and reruns, share compilations.
  logging.info('config:\n%s', FLAGS.config)
  with logs.user_errors():
    print(jobs.run(FLAGS.config, FLAGS.workdir).describe())


if __name__ == '__main__':
  app.run(main, flags_parser=logs.parse_flags)

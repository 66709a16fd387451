"""Experiment 1 on the synthetic demo data: Models 1-5 x 2 seeds + the best model's modality
ablation, baselines, tables and figures. Tens of minutes on a 2-core CPU (Model 5
fine-tunes MiniLM); re-running resumes where it stopped.

    python launch.py --config=configs/demo_exp1.py --workdir=runs/demo_exp1
"""

from configs import demo


def get_config():
  config = demo.get_config()
  config.job = 'sweep'
  config.sweep.seeds = (0, 1)
  config.sweep.n_bootstrap = 500
  config.sweep.parallel_runs = 2  # Two runs at once: 2 CPUs, one each.
  return config

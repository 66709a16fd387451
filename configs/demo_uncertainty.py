"""Uncertainty on the synthetic demo: its model with the gaussian head, trained on the
songs' annotator spread (KL), over 3 seeds; results.md shows the uncertainty metrics of
each seed and of their deep ensemble.

    python launch.py --config=configs/demo_uncertainty.py --workdir=runs/demo_uncertainty
    python launch.py --config=configs/demo_uncertainty.py --workdir=runs/demo_uncertainty \
        --config.job=ensemble   # the ensemble's own report, predictions and calibration
"""

from configs import demo


def get_config():
  config = demo.get_config()
  config.job = 'sweep'
  config.model.head = 'gaussian'  # A mean and a sigma per dimension.
  config.train.loss = 'annotator_kl'  # Or gaussian_nll / beta_nll.
  config.sweep.models = ('as_configured',)  # The demo's own model (a tiny Model 4).
  config.sweep.seeds = (0, 1, 2)  # The ensemble's members.
  config.sweep.modalities = ('bimodal',)
  config.sweep.ablation_model = ''  # No modality ablation.
  return config

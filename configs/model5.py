"""Model 5: Model 3 + the BERT lyrics tower unfrozen (fine-tuned with its own learning
rate and warm-up; gradients clipped by global norm)."""

from configs import default, model3


def apply(config):
  model3.apply(config)
  config.text.trainable = True
  config.text.learning_rate = 2e-5
  config.text.warmup_steps = 100
  config.train.grad_clip_norm = 1.0
  return config


def get_config():
  return apply(default.get_config())

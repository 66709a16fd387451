"""Model 5: Model 3 + the BERT lyrics tower unfrozen (fine-tuned with its own learning
rate and warm-up; gradients clipped by global norm)."""

from configs import model3


def get_config():
  config = model3.get_config()
  config.text.trainable = True
  config.text.learning_rate = 2e-5
  config.text.warmup_steps = 100
  config.train.grad_clip_norm = 1.0
  return config

"""Model 2: Model 1 + BatchNorm after every conv; reduce-on-plateau learning rate and
early stopping from this model on."""

from configs import default, model1


def apply(config):
  model1.apply(config)
  config.model.batch_norm = True
  config.train.schedule = 'plateau'
  config.train.early_stopping = True
  return config


def get_config():
  return apply(default.get_config())

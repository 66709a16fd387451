"""Model 2: Model 1 + BatchNorm after every conv; reduce-on-plateau learning rate and
early stopping from this model on."""

from configs import model1


def get_config():
  config = model1.get_config()
  config.model.batch_norm = True
  config.train.schedule = 'plateau'
  config.train.early_stopping = True
  return config

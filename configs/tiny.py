"""Used for testing only: the demo shrunk so that preparing + training takes seconds.

Tests set `config.data.root` and `config.data.data_dir` to temporary folders.
"""

from configs import demo


def get_config():
  config = demo.get_config()
  config.data.name = 'tiny'
  config.data.root = 'data/tiny_songs'
  config.data.num_workers = 1  # One thread: tests run side by side.
  config.data.synthetic.num_songs = 40
  config.data.synthetic.duration_s = 3.0
  config.audio.num_frames = 128
  config.text.max_length = 48
  config.model.widths = (4, 8, 8, 16)
  config.model.classifier_hidden = 16
  config.model.audio_dim = 8
  config.model.fusion_hidden = 16
  config.model.dropout = 0.0
  config.model.text_dropout = 0.0
  config.model.modality_dropout = 0.0
  config.train.batch_size = 8
  config.train.eval_batch_size = 8
  config.train.num_epochs = 6
  config.train.learning_rate = 3e-3
  config.train.schedule = 'constant'
  config.train.early_stopping = False
  return config

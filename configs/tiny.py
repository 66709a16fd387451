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
  config.model.audio.widths = (4, 8, 8, 16)
  config.model.audio.hidden = 16
  config.model.audio.out_dim = 8
  config.model.fusion.hidden = 16
  config.model.audio.dropout = 0.0
  config.model.fusion.text_dropout = 0.0
  config.model.fusion.modality_dropout = 0.0
  config.train.batch_size = 8
  config.train.eval_batch_size = 8
  config.train.num_epochs = 6
  config.train.learning_rate = 3e-3
  config.train.schedule = 'constant'
  config.train.early_stopping = False
  return config

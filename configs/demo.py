"""Demo: the synthetic dataset and a tiny Model 4 that trains in minutes on a CPU.

    python launch.py --config=configs/demo.py --workdir=runs/demo
"""

from configs import default


def get_config():
  config = default.get_config()
  config.data.name = 'demo'
  config.data.source = 'synthetic'
  config.data.root = 'data/demo_songs'
  # Shorter songs and frames than the thesis's 30 s keep the demo within minutes.
  config.data.synthetic.duration_s = 6.0
  config.audio.num_frames = 256  # 5.9 s at 22,050 Hz / 512.
  config.text.max_length = 128
  config.model.audio.widths = (8, 16, 32, 64)
  config.model.audio.hidden = 64
  config.model.audio.out_dim = 32
  # Regularise the 384-d lyrics path so the audio tower learns valence too.
  config.model.audio.dropout = 0.2
  config.model.fusion.text_dropout = 0.5
  config.model.fusion.modality_dropout = 0.5
  config.train.batch_size = 16
  config.train.num_epochs = 25
  config.train.learning_rate = 1e-3
  return config

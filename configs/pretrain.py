"""Self-supervised pretraining of the audio tower (Model 4's VGG, 30 s windows) on a
user's own unlabelled library (SimCLR/CLMR-style views: random 15 s crops, SpecAugment
masks; NT-Xent over the global batch). The manifest is `python -m data_prep.library`'s:

    python -m data_prep.library --audio_dir=~/Music --out=runs/library/manifest.csv
    python launch.py --config=configs/pretrain.py --workdir=runs/pretrain_mine \\
        --config.data.manifest=runs/library/manifest.csv

Then probe the tower (configs/demo_probe.py's job on a labelled set) or fine-tune from it
(--config.model.init_audio_from=runs/pretrain_mine with any Model 4 config).
"""

from configs import default


def pretraining(config):
  """The pretraining fields on top of a supervised config (its data and tower kept)."""
  config.job = 'pretrain'
  config.pretrain.method = 'simclr'
  config.pretrain.temperature = 0.1
  # The two views: crops of half the window at independent starts, 2 time and 2
  # frequency masks. No gain: loudness is part of what arousal sounds like.
  config.augment.crop_frames = config.audio.num_frames // 2
  config.augment.time_masks = 2
  config.augment.time_mask_width = config.audio.num_frames // 16
  config.augment.freq_masks = 2
  config.augment.freq_mask_width = 12
  config.model.audio.dropout = 0.0  # Not a parameter: the fine-tuned model keeps its own.
  config.train.batch_size = 32  # 64 views a step: 62 negatives for each.
  config.train.eval_batch_size = 32
  config.train.num_epochs = 30
  config.train.optimizer = 'adamw'
  config.train.learning_rate = 2e-3
  config.train.weight_decay = 1e-4
  config.train.schedule = 'cosine'
  config.train.warmup_steps = 20
  config.train.early_stopping = False
  return config


def get_config():
  config = pretraining(default.get_config())
  config.data.source = 'manifest'
  config.data.name = 'library'
  config.data.manifest = ''  # Set on the command line: data_prep.library's output.
  config.data.labels = False  # A seeded 90/10 train/validation split is cut and stored.
  config.data.lyrics = False
  return config

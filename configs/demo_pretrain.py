"""Demo: self-supervised pretraining of the demo's VGG tower on the synthetic songs'
audio, labels unused (SimCLR/CLMR-style views: random crops and SpecAugment masks).
A few minutes on 2 CPU cores; then probe it, or fine-tune from it:

    python launch.py --config=configs/demo_pretrain.py --workdir=runs/demo_pretrain
    python launch.py --config=configs/demo_probe.py --workdir=runs/demo_probe \\
        --config.model.init_audio_from=runs/demo_pretrain
    python launch.py --config=configs/demo.py --workdir=runs/demo_from_pretrained \\
        --config.model.init_audio_from=runs/demo_pretrain
"""

from configs import demo


def get_config():
  config = demo.get_config()  # The demo's data and tower (config.model.audio).
  config.job = 'pretrain'
  config.pretrain.method = 'simclr'
  config.pretrain.temperature = 0.1
  # The two views: 3 s crops of the 6 s window at independent starts, 2 time and 2
  # frequency masks. No gain: loudness is part of what arousal sounds like.
  config.augment.crop_frames = 128
  config.augment.time_masks = 2
  config.augment.time_mask_width = 16
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

"""Demo: self-supervised pretraining of the demo's VGG tower on the synthetic songs'
audio, labels unused (configs/pretrain.py's SimCLR/CLMR-style views: 3 s crops of the
6 s window and SpecAugment masks). A few minutes on 2 CPU cores; then probe it, or
fine-tune from it:

    python launch.py --config=configs/demo_pretrain.py --workdir=runs/demo_pretrain
    python launch.py --config=configs/demo_probe.py --workdir=runs/demo_probe \\
        --config.model.init_audio_from=runs/demo_pretrain
    python launch.py --config=configs/demo.py --workdir=runs/demo_from_pretrained \\
        --config.model.init_audio_from=runs/demo_pretrain
"""

from configs import demo, pretrain


def get_config():
  return pretrain.pretraining(demo.get_config())  # The demo's data and tower.

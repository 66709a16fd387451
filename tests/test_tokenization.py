"""WordPiece ids against the slow (pure Python) BertTokenizer of the same vocab."""

import random
import string

import numpy as np
import pytest
from transformers import BertTokenizer

from mer_jax import tokenization

_ALPHABET = (string.ascii_letters + string.digits + string.punctuation + ' ' * 10
             + '\n\téàüßçñ–—“”’…¿¡ΩЖж中文歌词あい🎵😢')


def _random_lyrics(rng: random.Random, n_chars: int) -> str:
  words = ['love', 'tears', "don't", 'rock-n-roll', 'NA-NA-NA', 'ooh', 'baby']
  parts = []
  while sum(map(len, parts)) < n_chars:
    parts.append(rng.choice(words) if rng.random() < 0.4 else ''.join(
        rng.choice(_ALPHABET) for _ in range(rng.randint(1, 12))))
  return ' '.join(parts)


@pytest.fixture(scope='module')
def tokenizers():
  path = tokenization.encoder_dir('minilm')
  return tokenization.load_tokenizer('minilm'), BertTokenizer.from_pretrained(
      path, local_files_only=True)


@pytest.mark.parametrize('max_length', [16, 128, 512])
def test_ids_match_slow_tokenizer(tokenizers, max_length):
  fast, slow = tokenizers
  rng = random.Random()
  texts = [_random_lyrics(rng, n) for n in (0, 5, 60, 400, 5000)] + ['', '  \n ']
  ids, mask = tokenization.tokenize(texts, fast, max_length)
  assert ids.shape == mask.shape == (len(texts), max_length)
  assert ids.dtype == mask.dtype == np.int32
  for i, text in enumerate(texts):
    want = slow.encode(text, add_special_tokens=True, truncation=True,
                       max_length=max_length)
    n = len(want)
    assert ids[i, :n].tolist() == want
    assert ids[i, 0] == slow.cls_token_id and ids[i, n - 1] == slow.sep_token_id
    assert np.all(ids[i, n:] == slow.pad_token_id)
    assert mask[i].tolist() == [1] * n + [0] * (max_length - n)


def test_missing_encoder_dir_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='does not exist'):
    tokenization.encoder_dir(str(tmp_path / 'nope'))
  (tmp_path / 'config.json').write_text('{}')
  with pytest.raises(FileNotFoundError, match='vocab.txt'):
    tokenization.encoder_dir(str(tmp_path))


def test_encoder_identity_hashes_the_files_once_until_one_changes(tiny_bert_dir,
                                                                  tmp_path, monkeypatch):
  """The identity's sha256 of vocab, config and weights is computed once per process
  (prediction and every run ask for it) and again only when a file's mtime changes;
  each hash is hashlib's of the file's bytes (its first 16 hex digits)."""
  import hashlib
  import os
  import shutil
  encoder = str(shutil.copytree(tiny_bert_dir, tmp_path / 'bert'))
  calls = []
  sha = hashlib.sha256
  monkeypatch.setattr(tokenization.hashlib, 'sha256', lambda *a: calls.append(1) or sha(*a))
  first = tokenization.encoder_identity(encoder)
  hashed = len(calls)
  assert hashed > 0 and tokenization.encoder_identity(encoder) == first
  assert len(calls) == hashed  # Cached: nothing hashed again.
  vocab = os.path.join(encoder, 'vocab.txt')
  with open(vocab, 'rb') as f:
    assert first['vocab.txt'] == sha(f.read()).hexdigest()[:16]
  st = os.stat(vocab)
  os.utime(vocab, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
  assert tokenization.encoder_identity(encoder) == first  # The same bytes, hashed again.
  assert len(calls) > hashed

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

"""Lyrics files -> plain text: UTF-8 `.txt` as is, `.lrc` without timestamps and tags.

An LRC line is `[mm:ss.xx]text` (possibly several timestamps); tag lines such as
`[ti:title]`, `[ar:artist]`, `[offset:0]` and Chinese credit lines such as
`作词 : name` / `作曲：name` (lyricist, composer, ...) are not lyrics and are dropped.
"""

from __future__ import annotations

import os
import re

LYRICS_EXTENSIONS = ('.txt', '.lrc')  # A song's lyrics file: <stem>.txt or <stem>.lrc.
_TIMESTAMP = re.compile(r'\[\d{1,3}:\d{1,2}(?:[.:]\d{1,3})?\]')
_TAG = re.compile(r'^\[[A-Za-z#]+:.*\]$')
_CREDIT = re.compile(r'^\s*(作词|作曲|编曲|词|曲|制作人|监制|混音|演唱|原唱|录音|和声|吉他|贝斯|鼓|'
                     r'键盘|弦乐|母带|出品|发行|OP|SP|Lyrics?\s*by|Composed\s*by|Arranged\s*by)'
                     r'\s*[:：]', re.IGNORECASE)


def parse_lrc(text: str) -> str:
  """LRC text -> lyric lines joined by newlines."""
  lines = []
  for raw in text.splitlines():
    line = raw.strip().lstrip('\ufeff')
    if not line or _TAG.match(line):
      continue
    line = _TIMESTAMP.sub('', line).strip()
    if not line or _TAG.match(line) or _CREDIT.match(line):
      continue
    lines.append(line)
  return '\n'.join(lines)


def read_lyrics(path: str | None, required: bool = True) -> tuple[str | None, str | None]:
  """(text, None) or (None, skip reason). Without a lyrics file, audio-only data
  (`required=False`) gets ''."""
  if path is None:
    return (None, 'no lyrics: the song has no lyrics file') if required else ('', None)
  if os.path.isdir(path):
    return None, f'lyrics path is a directory, not a file: {path}'
  if not os.path.isfile(path):
    return None, f'lyrics file missing: {path}'
  try:
    with open(path, encoding='utf-8-sig') as f:  # -sig: a byte-order mark is dropped.
      text = f.read()
  except UnicodeDecodeError as e:
    return None, f'lyrics not UTF-8: {path} ({e.reason} at byte {e.start})'
  if '\x00' in text:  # Valid UTF-8 can still be a binary file; text holds no NUL.
    return None, f'lyrics not text (NUL bytes, a binary file?): {path}'
  if path.lower().endswith('.lrc'):
    text = parse_lrc(text)
  if not text.strip():
    return None, f'lyrics empty: {path}'
  return text, None

"""The drills' hostile inputs, generated: audio files, lyrics files and manifests.

Every generator writes into a folder it is given and returns `Input`s: the name the
table shows and the path(s). Good audio is noise + tones (tests/fakes.py), long enough
for the tiny config's 128 frames.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import soundfile as sf

from tests import fakes

GOOD_SECONDS = 3.0


@dataclasses.dataclass(frozen=True)
class Input:
  name: str  # What the table shows.
  audio: str = ''  # Audio path.
  lyrics: str = ''  # Lyrics path ('' = the good lyrics).


def good_lyrics(folder: str, name: str = 'good') -> str:
  path = os.path.join(folder, f'{name}.txt')
  with open(path, 'w', encoding='utf-8') as f:
    f.write('sunshine dancing happy love\nwe sing along tonight\n')
  return path


def _float_wav(path: str, y: np.ndarray, sr: int = 22050) -> str:
  sf.write(path, y.astype(np.float32), sr, subtype='FLOAT')
  return path


def audio_inputs(folder: str, rng: np.random.Generator) -> list[Input]:
  """The table's audio rows (file names are the song ids' stems)."""
  os.makedirs(folder, exist_ok=True)
  p = lambda name: os.path.join(folder, name)  # noqa: E731
  out = []

  def add(name, path):
    out.append(Input(name, path))

  open(p('zero_bytes.wav'), 'wb').close()
  add('zero bytes', p('zero_bytes.wav'))
  with open(p('random_bytes.mp3'), 'wb') as f:
    f.write(rng.bytes(20000))
  add('random bytes', p('random_bytes.mp3'))
  whole = fakes.write_audio(p('whole_song.mp3'), seconds=10.0, seed=1)
  with open(whole, 'rb') as f:
    data = f.read()
  os.remove(whole)
  with open(p('truncated.mp3'), 'wb') as f:
    f.write(data[:len(data) * 3 // 10])
  add('truncated MP3 (first 30 %)', p('truncated.mp3'))
  n = int(GOOD_SECONDS * 22050)
  for value, label in ((np.nan, 'NaN'), (np.inf, 'inf')):
    y = 0.2 * rng.standard_normal(n)
    add(f'{label} samples (whole file)', _float_wav(p(f'{label}_all.wav'), np.full(n, value)))
    y[int(rng.integers(n))] = value
    add(f'{label} sample (one)', _float_wav(p(f'{label}_one.wav'), y))
  add('0.05 s', fakes.write_audio(p('short.wav'), seconds=0.05, seed=2))
  add('30 s of digital silence', _float_wav(p('silence.wav'), np.zeros(30 * 22050)))
  add('6 channels', fakes.write_audio(p('six_channels.wav'), GOOD_SECONDS, channels=6, seed=3))
  add('8 kHz', fakes.write_audio(p('sr_8k.wav'), GOOD_SECONDS, sr=8000, seed=4))
  add('192 kHz', fakes.write_audio(p('sr_192k.wav'), GOOD_SECONDS, sr=192000, seed=5))
  path = p('flac_24bit.flac')
  y = 0.3 * np.sin(np.arange(n) * 0.07) + 0.05 * rng.standard_normal(n)
  sf.write(path, y, 22050, subtype='PCM_24')
  add('24-bit FLAC', path)
  os.makedirs(p('a_directory.mp3'))
  add('a directory named like a song', p('a_directory.mp3'))
  add('path with spaces and non-ASCII',
      fakes.write_audio(p('ünïcødé sóng – 歌 ♪.wav'), GOOD_SECONDS, seed=6))
  os.symlink('loop.wav', p('loop.wav'))  # Points at itself: ELOOP.
  add('a symlink loop', p('loop.wav'))
  return out


def lyrics_inputs(folder: str, rng: np.random.Generator) -> list[Input]:
  """The table's lyrics rows, each with its own good audio file."""
  os.makedirs(folder, exist_ok=True)
  texts = {
      'binary': rng.bytes(3000) + b'\x00\x01\x02',
      'Latin-1': 'caf\u00e9 d\u00e9j\u00e0 vu, na\u00efve coeur\n'.encode('latin-1'),
      'UTF-8 with BOM': '\ufeffhappy sunny day\nwe dance\n'.encode('utf-8'),
      'CRLF line ends': b'happy sunny day\r\nwe dance all night\r\n',
      'empty': b'',
      'whitespace only': b'  \n\t\n   \r\n',
      '1 MB': ('love and sunshine forever ' * 40000)[:1 << 20].encode(),
      'emoji and RTL text': '\u2764\ufe0f\U0001F3B6 \u05d0\u05e0\u05d9 \u05d0\u05d5\u05d4\u05d1 '
                            '\u0645\u0631\u062d\u0628\u0627 happy\n'.encode('utf-8'),
  }
  out = []
  for i, (name, data) in enumerate(texts.items()):
    stem = f'lyrics_{i:02d}'
    path = os.path.join(folder, stem + '.txt')
    with open(path, 'wb') as f:
      f.write(data)
    audio = fakes.write_audio(os.path.join(folder, stem + '.wav'), GOOD_SECONDS, seed=20 + i)
    out.append(Input(f'lyrics: {name}', audio, path))
  return out


def good_songs(folder: str, n: int, lyrics: str) -> list[tuple[str, str, str]]:
  """n good (song_id, audio, lyrics) for the splits the table rows need beside them."""
  os.makedirs(folder, exist_ok=True)
  return [(f'good{i:02d}', fakes.write_audio(os.path.join(folder, f'good{i:02d}.wav'),
                                              GOOD_SECONDS, seed=100 + i), lyrics)
          for i in range(n)]


HEADER = 'song_id,audio_path,lyrics_path,valence,arousal,split'


def _rows(songs) -> list[str]:
  splits = ['train'] * 4 + ['validation', 'test']
  return [f'{sid},{a},{l},{0.2 + 0.1 * (i % 6):.2f},{0.7 - 0.1 * (i % 5):.2f},'
          f'{splits[i % len(splits)]}' for i, (sid, a, l) in enumerate(songs)]


def manifest_inputs(folder: str, songs) -> list[tuple[str, str, int]]:
  """(name, manifest path, data rows in it) of the table's manifest rows; `songs` are
  good (song_id, audio, lyrics) triples to fill them with."""
  os.makedirs(folder, exist_ok=True)
  rows = _rows(songs)
  body = '\n'.join([HEADER, *rows]) + '\n'
  a0, l0 = songs[0][1], songs[0][2]
  cases = {
      'empty file': b'',
      'header only': (HEADER + '\n').encode(),
      'missing column': '\n'.join(['song_id,audio_path,lyrics_path,valence,split',
                                   *[','.join(r.split(',')[:4] + r.split(',')[5:])
                                     for r in rows]]).encode() + b'\n',
      'extra column': '\n'.join([HEADER + ',notes',
                                 *[r + ',seen live' for r in rows]]).encode() + b'\n',
      'byte-order mark': b'\xef\xbb\xbf' + body.encode(),
      'CRLF line ends': body.replace('\n', '\r\n').encode(),
      'quoted commas': (body + f'"quoted, id",{a0},{l0},0.5,0.5,train\n').encode(),
      'duplicate id': (body + f'{songs[0][0]},{a0},{l0},0.5,0.5,train\n').encode(),
      'NaN label': (body + f'nan_label,{a0},{l0},nan,0.5,train\n').encode(),
      'labels outside 0..1': (body + f'out_of_range,{a0},{l0},1.7,-0.2,train\n').encode(),
      'unknown split': (body + f'bad_split,{a0},{l0},0.5,0.5,holdout\n').encode(),
  }
  out = []
  for i, (name, data) in enumerate(cases.items()):
    path = os.path.join(folder, f'manifest_{i:02d}.csv')
    with open(path, 'wb') as f:
      f.write(data)
    n_rows = max(0, len(data.replace(b'\r\n', b'\n').rstrip(b'\n').split(b'\n')) - 1) \
        if data else 0
    out.append((name, path, n_rows))
  return out


def manifest_of(path: str, inputs: list[Input], songs, lyrics: str) -> str:
  """A manifest of every audio/lyrics row (in 'train'; their lyrics, or the good ones)
  and the good songs (all splits); song ids are the file stems."""
  lines = [HEADER, *_rows(songs)]
  for i, inp in enumerate(inputs):
    sid = f'row{i:02d}'
    lines.append(f'"{sid}","{inp.audio}","{inp.lyrics or lyrics}",0.5,0.5,train')
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines) + '\n')
  return path

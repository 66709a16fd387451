"""Lyrics files: LRC parsing and the reasons a lyrics file is refused."""

from data_prep import lyrics

LRC = """\ufeff[ti:晴天]
[ar:周杰伦]
[al:叶惠美]
[by:someone]
[offset:0]
[00:00.00]晴天 - 周杰伦
[00:01.50]作词：周杰伦
[00:02.10]作曲 : 周杰伦
[00:03.00]编曲：钟兴民
[00:29.73]故事的小黄花
[00:33.10][01:45.20]从出生那年就飘着
[00:36.00]
[01:02.5]Lyrics by: Nobody
[01:05.00]Hello, it's me
"""


def test_lrc_strips_timestamps_tags_and_credits():
  assert lyrics.parse_lrc(LRC).splitlines() == [
      '晴天 - 周杰伦', '故事的小黄花', '从出生那年就飘着', "Hello, it's me"]


def test_read_lyrics_reasons(tmp_path):
  (tmp_path / 'a.lrc').write_text(LRC, encoding='utf-8')
  text, reason = lyrics.read_lyrics(str(tmp_path / 'a.lrc'))
  assert reason is None and text.startswith('晴天')
  (tmp_path / 'tags.lrc').write_text('[ti:x]\n[00:01.00]作词：y\n', encoding='utf-8')
  assert lyrics.read_lyrics(str(tmp_path / 'tags.lrc'))[1].startswith('lyrics empty')
  (tmp_path / 'b.txt').write_bytes('na\xefve'.encode('latin-1'))
  assert lyrics.read_lyrics(str(tmp_path / 'b.txt'))[1].startswith('lyrics not UTF-8')
  assert lyrics.read_lyrics(str(tmp_path / 'none.txt'))[1].startswith('lyrics file missing')
  assert lyrics.read_lyrics(None)[1].startswith('no lyrics')
  assert lyrics.read_lyrics(None, required=False) == ('', None)


def test_read_lyrics_drops_a_bom_and_refuses_binary_files_and_folders(tmp_path):
  bom = tmp_path / 'bom.txt'
  bom.write_bytes(b'\xef\xbb\xbfhello there\n')
  assert lyrics.read_lyrics(str(bom)) == ('hello there\n', None)
  nul = tmp_path / 'nul.txt'
  nul.write_bytes(b'valid utf-8 \x00\x01 but binary')
  assert lyrics.read_lyrics(str(nul)) == (
      None, f'lyrics not text (NUL bytes, a binary file?): {nul}')
  assert lyrics.read_lyrics(str(tmp_path)) == (
      None, f'lyrics path is a directory, not a file: {tmp_path}')

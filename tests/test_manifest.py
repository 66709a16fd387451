"""CSV manifest reader: validation errors name the file and row."""

import numpy as np
import pytest

from data_prep import manifest

HEADER = 'song_id,audio_path,lyrics_path,valence,arousal,split\n'


def _write(tmp_path, text, name='m.csv'):
  p = tmp_path / name
  p.write_text(text)
  return str(p)


def test_reads_rows_and_resolves_relative_paths(tmp_path):
  (tmp_path / 'sub').mkdir()
  path = _write(tmp_path / 'sub', HEADER + 'a,x/a.wav,l/a.txt,0.2,0.9,train\n'
                'b,/abs/b.mp3,,0.7,0.1,test\n')
  songs = manifest.read_manifest(path)
  assert [s.song_id for s in songs] == ['a', 'b']
  assert songs[0].audio_path == str(tmp_path / 'sub' / 'x' / 'a.wav')
  assert songs[0].lyrics_path == str(tmp_path / 'sub' / 'l' / 'a.txt')
  assert songs[1].audio_path == '/abs/b.mp3' and songs[1].lyrics_path is None
  assert songs[0].quadrant == 1 and songs[1].quadrant == 3  # Q2, Q4
  assert songs[0].congruent == -1


def test_missing_column_names_file_and_column(tmp_path):
  path = _write(tmp_path, 'song_id,audio_path,valence,arousal,split\na,a.wav,0.1,0.1,train\n')
  with pytest.raises(manifest.ManifestError, match=r'm\.csv: missing column\(s\) lyrics_path'):
    manifest.read_manifest(path)


@pytest.mark.parametrize('row,match', [
    ('a,a.wav,,1.5,0.1,train', r'row 2: valence 1.5 is outside 0..1'),
    ('a,a.wav,,0.5,abc,train', r"row 2: arousal 'abc' is not a number"),
    ('a,a.wav,,0.5,0.5,dev', r"row 2: split 'dev'"),
    ('a,,,0.5,0.5,train', r'row 2: empty audio_path'),
    ('a,a.wav,,,0.5,train', r'row 2: valence is missing'),
    ('a,a.wav,,0.5,nan,train', r"row 2: arousal is 'nan', not a number in 0..1"),
])
def test_bad_rows_name_the_row(tmp_path, row, match):
  path = _write(tmp_path, HEADER + row + '\n')
  with pytest.raises(manifest.ManifestError, match=match):
    manifest.read_manifest(path)


def test_duplicate_ids_rejected(tmp_path):
  path = _write(tmp_path, HEADER + 'a,a.wav,,0.5,0.5,train\na,b.wav,,0.5,0.5,test\n')
  with pytest.raises(manifest.ManifestError, match=r'row 3: song_id .a. already used on row 2'):
    manifest.read_manifest(path)


def test_missing_file_is_an_error(tmp_path):
  with pytest.raises(manifest.ManifestError, match='not found'):
    manifest.read_manifest(str(tmp_path / 'none.csv'))


def test_quadrant_matches_thresholds():
  rng = np.random.default_rng()
  for v, a in rng.uniform(size=(200, 2)):
    q = manifest.quadrant(v, a)
    want = {(True, True): 0, (False, True): 1, (False, False): 2, (True, False): 3}[
        (v >= 0.5, a >= 0.5)]
    assert q == want


def test_labels_optional_for_prediction(tmp_path):
  path = _write(tmp_path, 'song_id,audio_path\nx,x.mp3\n')
  with pytest.raises(manifest.ManifestError, match='missing column'):
    manifest.read_manifest(path)
  (song,) = manifest.read_manifest(path, require_labels=False)
  assert np.isnan(song.valence) and np.isnan(song.arousal) and song.lyrics_path is None
  assert song.audio_path == str(tmp_path / 'x.mp3')


def test_optional_annotator_std_columns(tmp_path):
  path = _write(tmp_path, HEADER.strip() + ',valence_std,arousal_std\n'
                'a,a.wav,,0.2,0.9,train,0.125,0\nb,b.wav,,0.7,0.1,test,,0.3\n')
  a, b = manifest.read_manifest(path)
  assert (a.valence_std, a.arousal_std, b.arousal_std) == (0.125, 0.0, 0.3)
  assert np.isnan(b.valence_std)
  assert np.isnan(manifest.read_manifest(_write(
      tmp_path, HEADER + 'a,a.wav,,0.2,0.9,train\n', 'n.csv'))[0].valence_std)
  for cell, match in (('-0.1', r'row 2: valence_std -0.1 is outside 0..1'),
                      ('x', r"row 2: valence_std 'x' is not a number"),
                      ('inf', r"row 2: valence_std is 'inf', not a number in 0..1")):
    bad = _write(tmp_path, HEADER.strip() + ',valence_std\n'
                 f'a,a.wav,,0.2,0.9,train,{cell}\n', 'bad.csv')
    with pytest.raises(manifest.ManifestError, match=match):
      manifest.read_manifest(bad)


@pytest.mark.parametrize('text', ['', '\n\n  \n'])
def test_an_empty_file_is_named_as_such(tmp_path, text):
  from mer_jax import predict_batch
  path = _write(tmp_path, text)
  size = len(text.encode())
  for read in (manifest.read_manifest, predict_batch.items_from_manifest):
    with pytest.raises(manifest.ManifestError,
                       match=rf'm\.csv: empty file \({size} bytes\): a header row'):
      read(path)

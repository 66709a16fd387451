"""EmoMusic reader on a generated miniature of the release: both column namings, padded
cells, the MediaEval 2013 split, a published split folder, and every error case."""

import os

import numpy as np
import pandas as pd
import pytest

from configs import exp2_emomusic
from data_prep import emomusic, prepare
from data_prep.tables import DatasetNotFoundError, ManifestError
from tests.fakes import write_audio


def make_emomusic(root, n=30, naming='mean_arousal', folder='', n_eval=6):
  """A release of `n` songs (ids 2, 5, 8, ...), the last `n_eval` in MediaEval's
  evaluation set; `folder` nests it one level (a zip unpacked into its own folder)."""
  base = os.path.join(root, folder)
  rng = np.random.default_rng(3)
  ids = [str(2 + 3 * i) for i in range(n)]
  va = rng.uniform(1.5, 8.5, (n, 2))
  sd = rng.uniform(0.5, 2.5, (n, 2))
  os.makedirs(os.path.join(base, 'annotations'))
  cols = (['mean_arousal', 'std_arousal', 'mean_valence', 'std_valence']
          if naming == 'mean_arousal' else
          ['arousal_mean', 'arousal_std', 'valence_mean', 'valence_std'])
  with open(os.path.join(base, emomusic.ANNOTATIONS), 'w') as f:
    f.write('song_id, ' + ', '.join(cols) + '\n')
    for i, sid in enumerate(ids):
      f.write(f' {sid} , {va[i, 1]:.3f}, {sd[i, 1]:.3f} ,{va[i, 0]:.3f}, {sd[i, 0]:.3f}\n')
  with open(os.path.join(base, emomusic.SONGS_INFO), 'w') as f:
    f.write('"song_id","file_name","Artist","Song title","start of the segment (min.sec)",'
            '"end of the segment (min.sec)","Genre","Mediaeval 2013 set"\n')
    for i, sid in enumerate(ids):
      s = 'evaluation' if i >= n - n_eval else 'development'
      f.write(f'"{sid}","{sid}.mp3\t","Artist {i}\t","Title\t","0.30","1.15",'
              f'"Rock\t","{s}\t"\n')
  for k, sid in enumerate(ids):
    write_audio(os.path.join(base, 'clips_45seconds', f'{sid}.mp3'), 1.5,
                (44100, 22050)[k % 2], 1 + k % 2, seed=k)
  return ids, va, sd


def _config(root, data_dir):
  config = exp2_emomusic.get_config()
  config.data.root = str(root)
  config.data.data_dir = str(data_dir)
  config.data.num_workers = 1
  config.audio.num_frames = 32
  return config


@pytest.mark.parametrize('naming,folder', [('mean_arousal', ''), ('arousal_mean', 'emo')])
def test_reads_the_release_and_the_mediaeval_split(tmp_path, naming, folder):
  ids, va, sd = make_emomusic(str(tmp_path / 'r'), naming=naming, folder=folder)
  config = _config(tmp_path / 'r', tmp_path / 'p')
  songs, skipped, files = prepare.read_songs(config)
  assert [s.song_id for s in songs] == ids and not skipped
  np.testing.assert_allclose([[s.valence, s.arousal] for s in songs], (va - 1) / 8,
                             atol=1e-3 / 8)
  np.testing.assert_allclose([[s.valence_std, s.arousal_std] for s in songs], sd / 8,
                             atol=1e-3 / 8)
  split = {s.song_id: s.split for s in songs}
  assert {i for i, s in split.items() if s == 'test'} == set(ids[-6:])  # Evaluation set.
  assert sum(s == 'validation' for s in split.values()) == 5  # ceil(0.2 * 24).
  assert all(os.path.isfile(s.audio_path) for s in songs)
  assert files[-1].endswith(os.path.join('splits', 'emomusic_mediaeval2013_seed0.csv'))
  # Stored once: a second read gives the same split; 'seeded' is another stored split.
  assert {s.song_id: s.split for s in prepare.read_songs(config)[0]} == split
  config.data.split = 'seeded'
  seeded = {s.song_id: s.split for s in prepare.read_songs(config)[0]}
  # scikit-learn rounds held-out shares up: ceil(0.3 * 30) = 9 held out, ceil(9 / 2) test.
  assert pd.Series(seeded).value_counts().to_dict() == {'train': 21, 'test': 5,
                                                        'validation': 4}
  assert os.path.isfile(tmp_path / 'p' / 'splits' / 'emomusic_seeded_seed0.csv')


def test_prepared_examples_carry_labels_and_std(tmp_path):
  ids, va, sd = make_emomusic(str(tmp_path / 'r'), n=12, n_eval=3)
  os.remove(tmp_path / 'r' / 'clips_45seconds' / f'{ids[0]}.mp3')
  config = _config(tmp_path / 'r', tmp_path / 'p')
  builder = prepare.prepare(config)
  got = {}
  for split in builder.info.splits:
    for ex in builder.as_dataset(split=split).as_numpy_iterator():
      got[ex['song_id'].decode()] = ex
  assert sorted(got, key=int) == ids[1:]
  for k, sid in enumerate(ids[1:], 1):
    np.testing.assert_allclose(
        [got[sid]['valence'], got[sid]['arousal'], got[sid]['valence_std'],
         got[sid]['arousal_std']], [*(va[k] - 1) / 8, *sd[k] / 8], atol=1e-3 / 8)
  rep = pd.read_csv(os.path.join(builder.data_dir, 'prep_report.csv'), dtype=str,
                    keep_default_na=False)
  row = rep[rep.item_id == ids[0]].iloc[0]
  assert row.status == 'skipped' and row.reason == (
      'audio file missing: ' + str(tmp_path / 'r' / 'clips_45seconds' / f'{ids[0]}.mp3'))


def test_published_split_folder_replaces_the_mediaeval_split(tmp_path):
  ids, _, _ = make_emomusic(str(tmp_path / 'r'))
  split_dir = tmp_path / 'meta' / 'split'
  os.makedirs(split_dir)
  lists = {'train': ids[:18], 'validation': ids[18:22], 'test': ids[22:28]}
  for name, part in lists.items():
    (split_dir / f'{name}.txt').write_text('\n'.join(part) + '\n')
  config = _config(tmp_path / 'r', tmp_path / 'p')
  config.data.split_file = str(split_dir)
  songs, skipped, _ = prepare.read_songs(config)
  assert {s.song_id: s.split for s in songs} == {i: n for n, p in lists.items() for i in p}
  assert sorted(r['item_id'] for r in skipped) == sorted(ids[28:])
  lists['test'] = ids[22:28] + ['99999']
  (split_dir / 'test.txt').write_text('\n'.join(lists['test']) + '\n')
  with pytest.raises(ManifestError, match='99999'):
    prepare.read_songs(config)


def _set_row(path, sid, row):
  with open(path) as f:
    lines = f.read().splitlines()
  k = [i for i, line in enumerate(lines) if line.startswith(f' {sid} ,')]
  assert len(k) == 1
  lines[k[0]] = row
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def _edit(path, old, new):
  with open(path) as f:
    text = f.read()
  assert old in text
  with open(path, 'w') as f:
    f.write(text.replace(old, new, 1))


def test_every_error_names_the_file(tmp_path):
  root, data = tmp_path / 'r', tmp_path / 'p'
  config = _config(root, data)
  with pytest.raises(DatasetNotFoundError, match=f'{root}.*cvml.unige.ch.*emoMusic'):
    prepare.read_songs(config)
  ids, _, _ = make_emomusic(str(root))
  ann, info = root / emomusic.ANNOTATIONS, root / emomusic.SONGS_INFO
  config.data.lyrics = True
  with pytest.raises(ValueError, match='EmoMusic has no lyrics'):
    prepare.read_songs(config)
  config.data.lyrics = False
  config.data.split = '70_15_15'
  with pytest.raises(ValueError, match="mediaeval2013.*'70_15_15'"):
    prepare.read_songs(config)
  config.data.split = 'mediaeval2013'
  # An out-of-range or empty label is a logged skip, not an error.
  _set_row(ann, ids[3], f' {ids[3]} , 9.5, 1, 5, 1')
  _set_row(ann, ids[4], f' {ids[4]} , , 1, 5, 1')
  songs, skipped, _ = prepare.read_songs(config)
  assert len(songs) == len(ids) - 2 and [r['item_id'] for r in skipped] == ids[3:5]
  assert all('outside 1..9' in r['reason'] and str(ann) in r['reason'] for r in skipped)
  cases = [
      (ann, 'mean_valence', 'valence', ManifestError, f'{ann}.*mean of valence'),
      (ann, f'\n {ids[6]} ,', f'\n {ids[1]} ,', ManifestError,
       f"{ann} row 8: song_id '{ids[1]}' already on row 3"),
      (info, f'"{ids[5]}","', '"77777","', ManifestError, f'{info}: no row for 1 .*{ids[5]}'),
      (info, f'"{ids[2]}","', f'"{ids[1]}","', ManifestError, f'{info} row 4: .*twice'),
      (info, 'development\t', 'dev', ManifestError, f"{info}: .*found 'dev'"),
      (info, '"file_name"', '"file"', ManifestError, f'{info}: missing column.*file_name'),
      (ann, f'\n {ids[7]} ,', f'\n {ids[7]} , 1, 2,', ManifestError,
       f'{ann}: cannot be read as CSV .*Expected 5 fields in line 9, saw 7\\)$'),
  ]
  for path, old, new, error, message in cases:
    backup = path.read_text()
    _edit(path, old, new)
    with pytest.raises(error, match=message):
      prepare.read_songs(config)
    path.write_text(backup)
  os.remove(info)
  with pytest.raises(DatasetNotFoundError, match=f'{info}.*cvml'):
    prepare.read_songs(config)
  make_emomusic(str(tmp_path / 'r2'))
  for f in os.listdir(tmp_path / 'r2' / 'clips_45seconds'):
    os.remove(tmp_path / 'r2' / 'clips_45seconds' / f)
  config.data.root = str(tmp_path / 'r2')
  with pytest.raises(DatasetNotFoundError, match='no audio under .*clips_45seconds'):
    prepare.read_songs(config)

"""Published split files replace a release's split: both formats, unused songs in the
prep report, and every error case."""

import os

import numpy as np
import pandas as pd
import pytest

from data_prep import split_files, tables
from mer_jax import input_pipeline
from tests.conftest import tiny_config, tiny_songs


def _lists(config, seed=0):
  """A published-style split of 30 of the 40 tiny songs (10 unused), unlike theirs."""
  ids = list(tiny_songs(config).index)
  order = np.random.default_rng(seed).permutation(len(ids))
  ids = [ids[i] for i in order]
  return {'train': ids[:20], 'validation': ids[20:25], 'test': ids[25:30]}, ids[30:]


def _write_folder(folder, lists):
  os.makedirs(folder, exist_ok=True)
  for split, ids in lists.items():
    with open(os.path.join(folder, f'{split}.txt'), 'w') as f:
      f.write('\n'.join(ids) + '\n\n')  # A trailing blank line is ignored.


def _prepared_splits(builder):
  return {s: sorted(i.decode() for i in input_pipeline.read_split(
      builder, s, ('song_id',))['song_id']) for s in input_pipeline.split_names(builder)}


@pytest.mark.parametrize('form', ['folder', 'csv'])
def test_split_file_replaces_the_split_and_lists_unused_songs(tiny_prepared, tiny_root,
                                                              tmp_path, form):
  from data_prep import prepare
  config = tiny_config(tiny_root)
  lists, unused = _lists(config)
  if form == 'folder':
    path = str(tmp_path / 'split')
    _write_folder(path, lists)
  else:
    path = str(tmp_path / 'split.csv')
    pd.DataFrame([{'song_id': i, 'split': s} for s, ids in lists.items() for i in ids]
                 ).sample(frac=1, random_state=1).to_csv(path, index=False)
  config.data.split_file = path
  builder = prepare.prepare(config)
  assert _prepared_splits(builder) == {s: sorted(ids) for s, ids in lists.items()}
  rep = pd.read_csv(os.path.join(builder.data_dir, 'prep_report.csv'),
                    dtype={'item_id': str}, keep_default_na=False)
  skipped = rep[rep.status == 'skipped']
  assert sorted(skipped.item_id) == sorted(unused)
  assert skipped.reason.str.startswith('unused: in no list of the split file').all()
  md = open(os.path.join(builder.data_dir, 'prep_report.md')).read()
  assert f'| unused | {len(unused)} |' in md
  # The original split's own data is untouched (another prepared variant).
  assert tiny_prepared[1].data_dir != builder.data_dir


def test_split_file_errors_name_the_ids_and_files(tiny_root, tmp_path):
  config = tiny_config(tiny_root)
  songs = [type('Song', (), {'song_id': i, 'split': 'train'})() for i in ('a', 'b', 'c')]
  folder = tmp_path / 'f'
  _write_folder(str(folder), {'train': ['a', 'zz9'], 'validation': ['b'], 'test': ['c']})
  with pytest.raises(tables.ManifestError, match=r'1 id\(s\) are not songs of the release: zz9'):
    split_files.apply(songs, str(folder))
  _write_folder(str(folder), {'train': ['a', 'a'], 'validation': ['b'], 'test': ['c', 'b']})
  with pytest.raises(tables.ManifestError, match='listed twice: a; in two splits: b'):
    split_files.read_split_file(str(folder))
  os.remove(folder / 'test.txt')
  with pytest.raises(tables.DatasetNotFoundError, match='missing: test.txt'):
    split_files.read_split_file(str(folder))
  csv = tmp_path / 's.csv'
  csv.write_text('song_id,split\na,train\nb,dev\n')
  with pytest.raises(tables.ManifestError, match=r"row 3: split must be one of .* 'dev'"):
    split_files.read_split_file(str(csv))
  csv.write_text('song,split\na,train\n')
  with pytest.raises(tables.ManifestError, match='song_id'):
    split_files.read_split_file(str(csv))
  with pytest.raises(tables.DatasetNotFoundError, match='neither a folder'):
    split_files.read_split_file(str(tmp_path / 'nothing'))
  assert config.data.split_file == ''  # The default: the release's own split.

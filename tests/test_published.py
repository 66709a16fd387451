"""Published results beside ours: the CSV's rows, the split names, and the section of
results.md on a matching dataset."""

import pandas as pd
import pytest

from configs import exp1, exp2_deam, exp2_emomusic, exp2_pmemo, tiny
from mer_jax import published


def test_published_rows_have_values_and_sources():
  pub = published.load()
  assert set(pub.columns) >= set(published.COLUMNS)
  assert pub.value.between(0, 1).all() and (pub.source.str.len() > 10).all()
  m2e = pub[(pub.system == 'Music2Emo (trained on this dataset)')].set_index(
      ['dataset', 'dimension']).value
  assert m2e['emomusic', 'valence'] == 0.5957 and m2e['pmemo', 'arousal'] == 0.7772
  assert sorted(pub[pub.dataset == 'merge_bimodal'].value) == [0.7921, 0.8174]
  sizes = pub[pub.split == 'music2emo'].groupby('dataset').test_songs.unique()
  assert {d: list(v) for d, v in sizes.items()} == {'deam': ['270'], 'emomusic': ['125'],
                                                     'pmemo': ['115']}  # DATASETS.md.
  assert not pub.duplicated(['system', 'dataset', 'split', 'metric', 'dimension']).any()


def test_split_names():
  c = exp2_pmemo.get_config()
  assert published.split_of(c)[0] == 'seeded'
  c.data.split_file, c.data.split_name = '/x/split', 'music2emo'
  assert published.split_of(c) == ('music2emo', 'the split file /x/split (music2emo)')
  c = exp2_emomusic.get_config()
  assert published.split_of(c)[0] == 'mediaeval2013'
  c = exp1.get_config()
  assert published.split_of(c)[0] == 'merge_70_15_15'
  assert published.dataset_of(c) == 'merge_bimodal'
  assert published.same_split('merge_40_30_30', 'merge_official') == 'maybe'
  assert published.same_split('seeded', 'music2emo') == 'no'
  assert published.same_split('', '') == 'no'  # An unnamed split file is never "the same".
  assert published.same_split('music2emo', 'music2emo', 125, '125') == 'yes'
  assert published.same_split('music2emo', 'music2emo', 124, '125') == 'size'
  assert published.same_split('music2emo', 'music2emo', 124, '') == 'yes'
  assert published.dataset_of(tiny.get_config()) == ''


def _tables():
  table = pd.DataFrame([
      {'model': m, 'dimension': d, 'metric': 'r2', 'mean': v}
      for m, vals in (('model1 (audio)', (0.31, 0.52)), ('model4 (audio)', (0.29, 0.61)))
      for d, v in zip(('valence', 'arousal'), vals)])
  quads = pd.DataFrame({'model': ['model1 (audio)', 'model4 (audio)'],
                        'macro_f1_mean': [0.55, 0.48]})
  return table, quads


def test_lines_print_matching_rows_with_our_best_model():
  table, quads = _tables()
  c = exp2_deam.get_config()
  text = '\n'.join(published.lines(c, table, quads))
  assert ('| Music2Emo (trained on this dataset) | R² | valence | 0.5131 | 0.310 '
          '(model1 (audio)) | no (theirs: music2emo) |') in text
  assert '| arousal | 0.6025 | 0.610 (model4 (audio)) |' in text
  assert 'pmemo' not in text and 'MERGE' not in text
  c.data.split_file, c.data.split_name = '/s', 'music2emo'
  assert text.count('| no (theirs') == 4
  assert '\n'.join(published.lines(c, table, quads, n_test=270)).count('| yes |') == 4
  # The same name with another test size (a wrong folder) is not the same split.
  text = '\n'.join(published.lines(c, table, quads, n_test=269))
  assert text.count('| no (music2emo by name, but 269 test songs; theirs 270) |') == 4
  c = exp1.get_config()
  text = '\n'.join(published.lines(c, table, quads))
  assert text.count("maybe (theirs: one of MERGE's official splits)") == 2
  assert '| 0.7921 | 0.550 (model1 (audio)) |' in text
  assert published.lines(tiny.get_config(), table, quads) == []


def test_a_csv_without_a_column_is_an_error(tmp_path):
  p = tmp_path / 'p.csv'
  p.write_text('system,dataset\nx,deam\n')
  with pytest.raises(ValueError, match=f'{p}: missing column.*split'):
    published.load(str(p))

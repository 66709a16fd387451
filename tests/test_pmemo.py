"""PMEmo2019 reader on a generated miniature of the release."""

import os

import numpy as np
import pandas as pd
import pytest

from configs import exp2_pmemo, exp2_pmemo_audio
from data_prep import pmemo, prepare, splits
from data_prep.merge import DatasetNotFoundError
from mer_jax import tokenization
from tests.fakes import write_audio

N = 28


def make_pmemo(root, n=N, with_lyrics=lambda i: i % 4 != 3):
  base = os.path.join(root, 'PMEmo2019')
  rng = np.random.default_rng(0)
  ids = [str(1 + 3 * i) for i in range(n)]
  va = rng.uniform(0.05, 0.95, size=(n, 2))
  os.makedirs(os.path.join(base, 'annotations'))
  pd.DataFrame({'musicId': ids, 'Arousal(mean)': va[:, 1], 'Valence(mean)': va[:, 0]}
               ).to_csv(os.path.join(base, 'annotations', 'static_annotations.csv'),
                        index=False)
  pd.DataFrame({'musicId': ids, 'Arousal(std)': 0.1, 'Valence(std)': 0.2}).to_csv(
      os.path.join(base, 'annotations', 'static_annotations_std.csv'), index=False)
  pd.DataFrame({'musicId': ids, 'fileName': [i + '.mp3' for i in ids]}).to_csv(
      os.path.join(base, 'metadata.csv'), index=False)
  os.makedirs(os.path.join(base, 'lyrics'))
  for k, sid in enumerate(ids):
    write_audio(os.path.join(base, 'chorus', sid + '.mp3'), 1.5, 44100, 2, seed=k)
    if with_lyrics(k):
      with open(os.path.join(base, 'lyrics', sid + '.lrc'), 'w', encoding='utf-8') as f:
        f.write(f'[ti:song {sid}]\n[00:00.00]作词：某人\n[00:10.50]line one of {sid}\n'
                f'[00:12.00]line two\n')
  return base, ids, va


def _config(tmp_path, cfg=exp2_pmemo):
  config = cfg.get_config()
  config.data.root = str(tmp_path)
  config.data.data_dir = str(tmp_path / 'prepared')
  config.data.num_workers = 1
  config.audio.num_frames = 32
  config.text.max_length = 16
  return config


def test_bimodal_and_audio_only(tmp_path):
  _, ids, va = make_pmemo(str(tmp_path))
  no_lyrics = {ids[k] for k in range(N) if k % 4 == 3}
  bi = prepare.prepare(_config(tmp_path))
  counts = {s: bi.info.splits[s].num_examples for s in bi.info.splits}
  assert sum(counts.values()) == N - len(no_lyrics)
  report = pd.read_csv(os.path.join(bi.data_dir, 'prep_report.csv'), dtype=str,
                       keep_default_na=False)
  assert len(report) == N
  skipped = report[report.status == 'skipped']
  assert set(skipped.item_id) == no_lyrics
  assert all(r.startswith('no lyrics') for r in skipped.reason)
  # The stored split is shared by both runs and covers every labelled song.
  split_path = splits.stored_split_path(_config(tmp_path))
  split = pd.read_csv(split_path, dtype=str)
  assert sorted(split.song_id) == sorted(ids)
  audio = prepare.prepare(_config(tmp_path, exp2_pmemo_audio))
  a_counts = {s: audio.info.splits[s].num_examples for s in audio.info.splits}
  assert sum(a_counts.values()) == N
  assert a_counts == split.split.value_counts().to_dict()
  # Labels pass through unchanged; lyrics are the LRC text without tags and credits.
  tok = tokenization.load_tokenizer('minilm')
  for ex in bi.as_dataset(split='train').take(3).as_numpy_iterator():
    k = ids.index(ex['song_id'].decode())
    assert ex['valence'] == pytest.approx(va[k, 0], abs=1e-6)
    assert ex['arousal'] == pytest.approx(va[k, 1], abs=1e-6)
    assert ex['valence_std'] == pytest.approx(0.2) and ex['arousal_std'] == pytest.approx(0.1)
    want, _ = tokenization.tokenize([f'line one of {ids[k]}\nline two'], tok, 16)
    np.testing.assert_array_equal(ex['token_ids'], want[0])


def test_missing_release_and_bad_labels(tmp_path):
  with pytest.raises(DatasetNotFoundError, match='PMEmo2019 not found.*static_annotations'):
    pmemo.read_release(str(tmp_path), str(tmp_path / 's.csv'))
  base, ids, _ = make_pmemo(str(tmp_path), n=12)
  ann = os.path.join(base, 'annotations', 'static_annotations.csv')
  df = pd.read_csv(ann, dtype=str)
  df.loc[0, 'Valence(mean)'] = ''
  df.loc[1, 'Arousal(mean)'] = '1.7'
  df.to_csv(ann, index=False)
  songs, skipped, _ = pmemo.read_release(str(tmp_path), str(tmp_path / 's.csv'),
                                         lyrics=False)
  assert len(songs) == 10
  assert {r['item_id'] for r in skipped} == {ids[0], ids[1]}
  assert all('label missing or outside 0..1' in r['reason'] for r in skipped)
  df.drop(columns=['Arousal(mean)']).to_csv(ann, index=False)
  with pytest.raises(ValueError, match=r'static_annotations.csv: missing column\(s\) '
                                       r'Arousal\(mean\)'):
    pmemo.read_release(str(tmp_path), str(tmp_path / 's.csv'))

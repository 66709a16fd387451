"""Self-supervised pretraining and the probe on an unlabelled library: a nested folder of
songs -> a manifest (data_prep.library) -> prepared without labels (seeded 90/10
split) -> job 'pretrain' -> its tower warm-starts a supervised model (the very arrays)
and is probed beside a random tower (job 'probe'), whose cached embeddings are the
tower's outputs on the prepared log-mels; supervised augmentation in the train step."""

import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from data_prep import library, prepare, synthetic
from mer_jax import augment, checkpointing, input_pipeline, jobs, train
from tests.conftest import tiny_config


@pytest.fixture(scope='module')
def unlabelled(tmp_path_factory):
  """(config, pretrain workdir): 30 generated 3 s songs in nested folders (plus a
  cover image), their manifest, one pretraining epoch."""
  root = tmp_path_factory.mktemp('library')
  params = synthetic.SyntheticParams(duration_s=3.0)
  for i in range(30):
    rng = np.random.default_rng([5, i])
    folder = root / 'music' / f'artist{i % 3}' / 'album'
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / f'{i:02d} song.wav', synthetic.synthesize(*rng.uniform(size=2),
                                                                  params, rng), 22050)
  (root / 'music' / 'artist0' / 'cover.jpg').write_bytes(b'\xff\xd8 not audio')
  rows, others = library.library_rows(str(root / 'music'), str(root / 'manifest.csv'))
  library.write_manifest(rows, str(root / 'manifest.csv'))
  assert len(rows) == 30 and others == 1
  assert rows[0] == {'song_id': 'artist0/album/00 song.wav',
                     'audio_path': 'music/artist0/album/00 song.wav', 'lyrics_path': ''}
  config = tiny_config(str(root))
  config.data.source, config.data.name = 'manifest', 'library'
  config.data.manifest = str(root / 'manifest.csv')
  config.data.labels = False
  config.data.lyrics = False
  config.job = 'pretrain'
  config.augment.crop_frames = 64
  config.augment.time_masks = 1
  config.augment.time_mask_width = 8
  config.train.num_epochs = 1
  workdir = str(root / 'pretrain')
  result = jobs.run(config, workdir)
  assert 'view top-1' in result.lines[0]
  return config, workdir


def test_an_unlabelled_library_is_prepared_with_a_seeded_split(unlabelled, tmp_path):
  config, _ = unlabelled
  builder = prepare.prepare(config)
  counts = {s: input_pipeline.num_examples(builder, s)
            for s in input_pipeline.split_names(builder)}
  assert counts == {'train': 27, 'validation': 3}  # 90 / 10, no test split.
  labels = input_pipeline.read_split(builder, 'train', ('valence', 'arousal'))
  assert np.isnan(labels['valence']).all() and np.isnan(labels['arousal']).all()
  stored = pd.read_csv(os.path.join(config.data.data_dir, 'splits',
                                    'manifest_unlabelled_library_seed0.csv'))
  assert len(stored) == 30 and set(stored.split) == {'train', 'validation'}
  # A supervised job on it is refused before any work, in one line.
  other = config.copy_and_resolve_references()
  other.job = 'train'
  with pytest.raises(ValueError, match='train only the self-supervised tower'):
    jobs.run(other, str(tmp_path / 'never'))
  assert not (tmp_path / 'never').exists()


def test_pretraining_writes_a_tower_that_warm_starts_a_supervised_model(unlabelled):
  config, workdir = unlabelled
  report = pd.read_csv(os.path.join(workdir, 'report', 'pretrain.csv'))
  assert set(report.split) == {'train', 'validation'}
  assert np.isfinite(report.nt_xent).all()
  _, saved = checkpointing.restore_best(workdir)
  assert set(saved['params']) == {'audio', 'proj_hidden', 'proj_out'}
  # The tower as a supervised model's initial audio tower: the very arrays.
  sup = config.copy_and_resolve_references()
  sup.job, sup.task, sup.model.modality = 'train', 'fusion', 'audio'
  sup.model.init_audio_from = workdir
  task = train.tasks.get_task(sup)
  builder = prepare.prepare(config)
  data = train.Data(builder, {}, {}, None, 27, {})
  state = train.initial_state(sup, task, data, total_steps=10)
  for name in ('params', 'batch_stats'):
    a, b = getattr(state, name)['audio'], saved[name]['audio']
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_probe_compares_the_pretrained_and_a_random_tower(unlabelled, tiny_prepared,
                                                          tmp_path):
  pre_config, workdir = unlabelled
  config, builder = tiny_prepared
  config = config.copy_and_resolve_references()
  config.job = 'probe'
  config.probe.towers = ('random', workdir)
  config.sweep.seeds = (0, 1)
  config.train.num_epochs = 2
  out = str(tmp_path / 'probe')
  result = jobs.run(config, out)
  table = pd.read_csv(os.path.join(out, 'report', 'probe.csv'))
  assert table.tower.tolist() == ['random', 'pretrain'] and (table.seeds == 2).all()
  for d in ('valence', 'arousal'):  # Mean and std over the seeds' own reports.
    seeds = [pd.read_csv(os.path.join(out, 'runs', f'pretrain-seed{s}', 'report',
                                      'metrics.csv')) for s in (0, 1)]
    r2 = [float(m[(m.split == 'test') & (m.dimension == d) & (m.metric == 'r2')].value.iloc[0])
          for m in seeds]
    row = table[table.tower == 'pretrain'].iloc[0]
    assert row[f'{d}_r2_mean'] == pytest.approx(np.mean(r2), rel=1e-5)  # 6 digits.
    assert row[f'{d}_r2_std'] == pytest.approx(np.std(r2, ddof=1), rel=1e-5)
  assert os.path.getsize(os.path.join(out, 'report', 'probe.png')) > 0
  assert len(result.lines) == 2
  # The head's inputs are the pretrained tower's outputs on the prepared log-mels,
  # standardised per feature with the training songs' mean and std.
  from mer_jax.frontends import vgg_frozen
  c = train.runs.derive(config, **{'model.init_audio_from': workdir})
  got = vgg_frozen.song_embeddings(builder, c)
  module, variables, _ = vgg_frozen.tower(c)
  raw = {}
  for split in ('train', 'test'):
    cols = input_pipeline.read_split(builder, split, ('song_id', 'mel'))
    raw[split] = (cols['song_id'], np.asarray(
        module.apply(variables, jnp.asarray(cols['mel']), train=False)))
  mean, std = raw['train'][1].mean(0), raw['train'][1].std(0)
  ids, emb = raw['test']
  np.testing.assert_allclose(np.stack([got[i] for i in ids]), (emb - mean) / std,
                             atol=1e-4, rtol=1e-4)
  train_std = np.stack([got[i] for i in raw['train'][0]])
  np.testing.assert_allclose(train_std.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(train_std.std(0), 1, atol=1e-4)


def test_supervised_augmentation_changes_only_the_training_batch():
  cfg = ml_collections.ConfigDict({
      'task': 'fusion', 'model': {'head': 'point'},
      'augment': dict(enabled=True, crop_frames=0, shift_frames=2, gain_db=3.0,
                      time_masks=1, time_mask_width=4, freq_masks=0, freq_mask_width=0,
                      mixup_alpha=0.5)})
  fn = augment.batch_fn(cfg, ('mel', 'lyrics_emb'))
  rng = np.random.default_rng(0)
  batch = {'inputs': {'mel': jnp.asarray(rng.uniform(-70, 0, (4, 8, 16)), jnp.float32),
                      'lyrics_emb': jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)},
           'targets': jnp.asarray(rng.uniform(size=(4, 2)), jnp.float32),
           'mask': jnp.ones(4)}
  out = jax.jit(fn)(batch, jax.random.key(0))
  assert out['inputs']['mel'].shape == (4, 8, 16)
  assert not np.allclose(out['inputs']['mel'], batch['inputs']['mel'])
  assert not np.allclose(out['targets'], batch['targets'])  # Mixed up.
  np.testing.assert_array_equal(out['mask'], batch['mask'])
  cfg.augment.enabled = False
  assert augment.batch_fn(cfg, ('mel',)) is None  # Off: the step is unchanged.
  cfg.augment.enabled = True
  with pytest.raises(ValueError, match='token_ids'):
    augment.batch_fn(cfg, ('mel', 'token_ids', 'attention_mask'))
  cfg.task = 'pretrain'  # Its views are its augmentation.
  assert augment.batch_fn(cfg, ('mel',)) is None

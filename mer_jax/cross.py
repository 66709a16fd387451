"""Cross-dataset matrix: train on one dataset, test on every other (audio-only).

`config.cross.datasets` names dataset configs (e.g. exp1, exp2_pmemo_audio, exp2_deam)
and `config.cross.roots` their release folders. Each dataset gets one audio-only model
(the experiment's model and training fields) in `<workdir>/cross/<dataset>/`; its best
checkpoint is then evaluated on every dataset's test split, with the test features
re-referenced to the training dataset's max power (`input_pipeline.model_mel`: equal to
extracting them against it, floor and padding included, louder or quieter test set). Written to `<workdir>/report/`:
`cross_dataset.csv` (train,test,dimension,metric,value) and `cross_dataset.md`.
"""

from __future__ import annotations

import importlib
import math
import os

import jax
import ml_collections
import pandas as pd
from jax.sharding import NamedSharding, PartitionSpec as P

from mer_jax import checkpointing, input_pipeline, metrics, models, train


def dataset_config(config: ml_collections.ConfigDict, name: str, root: str
                   ) -> ml_collections.ConfigDict:
  """The dataset config `name` with the experiment's model, audio and training fields."""
  c = importlib.import_module(f'configs.{name}').get_config()
  c.data.root = root
  c.data.data_dir = config.data.data_dir
  c.data.num_workers = config.data.num_workers
  for part in ('model', 'train', 'text'):
    c[part] = ml_collections.ConfigDict(config[part].to_dict())
  crop = c.audio.crop
  c.audio = ml_collections.ConfigDict(config.audio.to_dict())
  c.audio.crop = crop  # The dataset's own window rule (DEAM: centre).
  c.model.modality = 'audio'
  c.seed, c.job = config.seed, 'train'
  return c


def _best_state(config, workdir, builder):
  model = models.create_model(config)
  dummy = input_pipeline.dummy_batch(builder, None, config.train.batch_size)
  state = train.create_train_state(config, model, jax.random.key(0),
                                   {'mel': dummy['mel']}, total_steps=1)
  ckpt = checkpointing.Checkpointer(workdir)
  state, _ = ckpt.restore(ckpt.best_step(), state)
  ckpt.close()
  return state


def run(config: ml_collections.ConfigDict, workdir: str) -> pd.DataFrame:
  from data_prep import prepare
  names, roots = tuple(config.cross.datasets), tuple(config.cross.roots)
  if len(names) != len(roots):
    raise ValueError(f'config.cross.datasets ({len(names)}) and config.cross.roots '
                     f'({len(roots)}) differ in length')
  cfgs = {n: dataset_config(config, n, r) for n, r in zip(names, roots)}
  for n, c in cfgs.items():
    wd = os.path.join(workdir, 'cross', n)
    if not os.path.isfile(os.path.join(wd, 'report', 'predictions.csv')):
      print(f'training on {n}', flush=True)
      train.train_and_evaluate(c, wd)
  builders = {n: prepare.prepare(c) for n, c in cfgs.items()}
  mesh = train.make_mesh()
  sharding, replicated = NamedSharding(mesh, P('data')), NamedSharding(mesh, P())
  eval_fn = jax.jit(train.eval_step, out_shardings=(replicated, replicated))
  rows = []
  for tr in names:
    state = jax.device_put(_best_state(cfgs[tr], os.path.join(workdir, 'cross', tr),
                                       builders[tr]), replicated)
    ref = builders[tr].info.metadata['max_power']
    for te in names:
      offset = 10 * math.log10(builders[te].info.metadata['max_power'] / ref)
      ds = input_pipeline.load_split(builders[te], 'test', None, db_offset=offset)
      preds, _ = train.evaluate(eval_fn, state, input_pipeline.eval_batches(
          ds, cfgs[tr].train.eval_batch_size), ('mel',), sharding)
      for i, d in enumerate(metrics.DIMENSIONS):
        m = metrics.all_metrics(preds['targets'][:, i], preds['preds'][:, i])
        rows += [{'train': tr, 'test': te, 'dimension': d, 'metric': k, 'value': m[k]}
                 for k in ('r2', 'rmse', 'ccc')]
  df = pd.DataFrame(rows)
  folder = os.path.join(workdir, 'report')
  os.makedirs(folder, exist_ok=True)
  df.to_csv(os.path.join(folder, 'cross_dataset.csv'), index=False, float_format='%.8g')
  lines = ['# Cross-dataset results', '',
           'Audio-only model trained on the row dataset, tested on the column dataset\'s '
           'test split (features re-referenced to the training max power).', '']
  for d in metrics.DIMENSIONS:
    for k, name in (('r2', 'R² ↑'), ('rmse', 'RMSE ↓'), ('ccc', 'CCC ↑')):
      t = df[(df.dimension == d) & (df.metric == k)].pivot(index='train', columns='test',
                                                           values='value')
      t = t.loc[list(names), list(names)]
      lines += [f'## {d}: {name}', '', '| train \\ test | ' + ' | '.join(names) + ' |',
                '|---|' + '---:|' * len(names)]
      lines += [f'| {tr} | ' + ' | '.join(f'{v:.3f}' for v in t.loc[tr]) + ' |'
                for tr in names]
      lines.append('')
  with open(os.path.join(folder, 'cross_dataset.md'), 'w') as f:
    f.write('\n'.join(lines))
  return df

"""Job 'cross': train on one dataset, test on every other (audio-only).

`config.cross.names` lists the datasets (in the tables' order), `config.cross.datasets`
maps each name to its `data` section and window rule (`crop`; configs/exp2_cross.py
builds them from the dataset configs) and `config.cross.roots` gives their release
folders in the same order. Each dataset gets
one audio-only model (the experiment's model and training fields) in
`<workdir>/cross/<dataset>/`; its best checkpoint is then evaluated on every dataset's
test split, with the test features re-referenced to the training dataset's max power
(`input_pipeline.model_mel`: equal to extracting them against it, floor and padding
included, louder or quieter test set). Written to `<workdir>/report/`:
`cross_dataset.csv` (train,test,dimension,metric,value) and `cross_dataset.md`.
"""

from __future__ import annotations

import math
import os

import jax
import ml_collections
import pandas as pd
from jax.sharding import NamedSharding, PartitionSpec as P

from mer_jax import checkpointing, input_pipeline, metrics, runs, tasks, train
from mer_jax.jobs import JobResult


def dataset_config(config: ml_collections.ConfigDict, name: str, root: str
                   ) -> ml_collections.ConfigDict:
  """The experiment's config on dataset `name` (its data section and window rule; the
  experiment's data folders and workers), audio-only."""
  d = config.cross.datasets[name]
  data = ml_collections.ConfigDict(d.data.to_dict())
  data.root, data.data_dir = root, config.data.data_dir
  data.num_workers = config.data.num_workers
  # The dataset's own window rule (DEAM: centre).
  return runs.derive(config, data=data, audio__crop=d.crop, model__modality='audio',
                     job='train')


def _best_state(config, workdir, builder, lookups):
  task = tasks.get_task(config)
  dummy = input_pipeline.dummy_batch(builder, lookups, config.train.batch_size)
  state = train.create_train_state(config, task.create_model(config, None),
                                   jax.random.key(0),
                                   {k: dummy[k] for k in task.input_keys}, total_steps=1)
  ckpt = checkpointing.Checkpointer(workdir)
  state, _ = ckpt.restore(ckpt.best_step(), state)
  ckpt.close()
  return state


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  """Trains what is missing (re-running resumes), then writes the matrix."""
  from data_prep import prepare
  names, roots = tuple(config.cross.names), tuple(config.cross.roots)
  if len(names) != len(roots):
    raise ValueError(f'config.cross.names ({len(names)}) and config.cross.roots '
                     f'({len(roots)}) differ in length')
  unknown = [n for n in names if n not in config.cross.datasets]
  if unknown:
    raise ValueError(f'config.cross.names {unknown} are not in config.cross.datasets '
                     f'({", ".join(config.cross.datasets)})')
  cfgs = {n: dataset_config(config, n, r) for n, r in zip(names, roots)}
  for n, c in cfgs.items():
    wd = os.path.join(workdir, 'cross', n)
    if not runs.is_finished(wd):
      print(f'training on {n}', flush=True)
      train.train_and_evaluate(c, wd)
  builders = {n: prepare.prepare(c) for n, c in cfgs.items()}
  keys = tasks.get_task(cfgs[names[0]]).input_keys
  # The audio front-end's per-song values (frozen musicnn, embeddings) of each dataset.
  lookups = {n: input_pipeline.lookups(b, cfgs[n], keys) for n, b in builders.items()}
  mesh = train.make_mesh()
  sharding, replicated = NamedSharding(mesh, P('data')), NamedSharding(mesh, P())
  rows = []
  for tr in names:
    task = tasks.get_task(cfgs[tr])
    eval_fn = jax.jit(task.eval_step, out_shardings=(replicated, replicated))
    state = jax.device_put(_best_state(cfgs[tr], os.path.join(workdir, 'cross', tr),
                                       builders[tr], lookups[tr]), replicated)
    ref = builders[tr].info.metadata['max_power']
    for te in names:
      offset = 10 * math.log10(builders[te].info.metadata['max_power'] / ref)
      ds = input_pipeline.load_split(builders[te], 'test', lookups[te], db_offset=offset)
      preds, _ = train.evaluate(eval_fn, state, input_pipeline.eval_batches(
          ds, cfgs[tr].train.eval_batch_size), task.input_keys, sharding, task.summarize)
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
  report = os.path.abspath(os.path.join(folder, 'cross_dataset.md'))
  with open(report, 'w') as f:
    f.write('\n'.join(lines))
  return JobResult({'table': df}, report)

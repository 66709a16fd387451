"""Training and evaluation: `train_and_evaluate(config, workdir)`.

Pure jitted steps over a global batch sharded on a 'data' mesh axis of every local
device (parameters replicated), Adam on the MSE of (valence, arousal), per-epoch
validation, the best-validation parameters kept, and a final report.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metric_writers, periodic_actions
from flax.training import train_state
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from mer_jax import input_pipeline, losses, metrics, models, report


class TrainState(train_state.TrainState):
  batch_stats: Any


def _model_inputs(batch: dict) -> tuple:
  return batch.get('mel'), batch.get('lyrics_emb')


def create_train_state(config: ml_collections.ConfigDict, model: models.FusionRegressor,
                       rng: jax.Array, batch: dict) -> TrainState:
  """Initialises parameters from the shapes of one batch."""
  mel, emb = _model_inputs(batch)
  variables = model.init({'params': rng}, mel, emb, train=False)
  tx = optax.adamw(config.train.learning_rate, weight_decay=config.train.weight_decay)
  return TrainState.create(apply_fn=model.apply, params=variables['params'],
                           batch_stats=variables.get('batch_stats', {}), tx=tx)


def train_step(state: TrainState, batch: dict, rng: jax.Array
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One Adam step on the MSE of the batch; dropout rng = fold_in(rng, step)."""
  dropout_rng = jax.random.fold_in(rng, state.step)
  mel, emb = _model_inputs(batch)

  def loss_fn(params):
    pred, updates = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats}, mel, emb, train=True,
        rngs={'dropout': dropout_rng}, mutable=['batch_stats'])
    return losses.mse(pred, batch['targets']), updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads,
                                batch_stats=updates.get('batch_stats', {}))
  return state, {'loss': loss, 'grad_norm': optax.global_norm(grads)}


def eval_step(state: TrainState, batch: dict) -> jax.Array:
  """Predictions [batch, 2] (valence, arousal), 0..1, with running BatchNorm stats."""
  mel, emb = _model_inputs(batch)
  return state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats},
                        mel, emb, train=False)


def _strip(batch: dict, modality: str) -> dict:
  """Drops host-only fields and the inputs the modality does not use."""
  drop = {'song_id', 'quadrant'}
  if modality == 'lyrics':
    drop.add('mel')
  if modality == 'audio':
    drop.add('lyrics_emb')
  return {k: v for k, v in batch.items() if k not in drop}


def predict(eval_fn, state: TrainState, batches, sharding, modality: str
            ) -> dict[str, np.ndarray]:
  """Runs `eval_fn` over padded eval batches; returns real examples only."""
  out = {'song_id': [], 'targets': [], 'preds': [], 'quadrant': []}
  for batch in batches:
    keep = batch['mask'] > 0
    preds = np.asarray(eval_fn(state, jax.device_put(_strip(batch, modality), sharding)))
    out['preds'].append(preds[keep])
    out['targets'].append(batch['targets'][keep])
    out['song_id'].append(batch['song_id'][keep])
    out['quadrant'].append(batch['quadrant'][keep])
  return {k: np.concatenate(v) for k, v in out.items()}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Prepares data if needed, trains, evaluates the best epoch, writes the report.

  Returns:
    {split: {dimension: {metric: value}}} of the best-validation parameters.
  """
  from data_prep import prepare as prepare_lib
  os.makedirs(workdir, exist_ok=True)
  builder = prepare_lib.prepare(config)
  modality = config.model.modality
  embeddings = (input_pipeline.lyrics_embeddings(builder, config)
                if modality != 'audio' else None)
  n_dev = jax.device_count()
  for name in ('batch_size', 'eval_batch_size'):
    if config.train[name] % n_dev:
      raise ValueError(f'config.train.{name}={config.train[name]} is not divisible by '
                       f'the {n_dev} devices')
  mesh = jax.make_mesh((n_dev,), ('data',), axis_types=(jax.sharding.AxisType.Auto,))
  data_sharding = NamedSharding(mesh, P('data'))
  replicated = NamedSharding(mesh, P())

  model = models.create_model(config)
  rng = jax.random.key(config.seed)
  init_rng, dropout_rng = jax.random.split(rng)
  state = create_train_state(config, model, init_rng, _strip(
      input_pipeline.dummy_batch(builder, embeddings, config.train.batch_size), modality))
  state = jax.device_put(state, replicated)
  p_train = jax.jit(train_step, donate_argnums=0, out_shardings=(replicated, replicated))
  p_eval = jax.jit(eval_step, out_shardings=replicated)

  splits = {s: input_pipeline.load_split(builder, s, embeddings)
            for s in input_pipeline.split_names(builder)}
  for s in ('train', 'validation'):
    if s not in splits:
      raise ValueError(f'prepared data in {builder.data_dir} has no {s!r} examples '
                       '(see prep_report.md there)')
  n_train = input_pipeline.num_examples(builder, 'train')
  steps_per_epoch = n_train // config.train.batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'{n_train} training examples < batch size {config.train.batch_size}')
  total = steps_per_epoch * config.train.num_epochs
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  progress = periodic_actions.ReportProgress(num_train_steps=total, writer=writer)
  history, best, best_loss = [], None, np.inf
  with tqdm(total=total, desc='train', unit='step') as bar:
    for epoch in range(config.train.num_epochs):
      losses_ = []
      for batch in input_pipeline.train_batches(splits['train'], n_train,
                                                config.train.batch_size, config.seed, epoch):
        state, m = p_train(state, jax.device_put(_strip(batch, modality), data_sharding),
                           dropout_rng)
        losses_.append(m['loss'])
        progress(int(state.step))
        bar.update(1)
      train_loss = float(np.mean(jax.device_get(losses_)))
      val = predict(p_eval, state, input_pipeline.eval_batches(
          splits['validation'], config.train.eval_batch_size), data_sharding, modality)
      val_m = metrics.per_dimension(val['targets'], val['preds'])
      val_loss = float(np.mean(np.square(val['preds'] - val['targets'])))
      history.append({'epoch': epoch + 1, 'step': int(state.step),
                      'train_loss': train_loss, 'val_loss': val_loss})
      writer.write_scalars(int(state.step), {
          'train/loss': train_loss, 'validation/loss': val_loss,
          **{f'validation/{d}_{k}': v for d, dm in val_m.items() for k, v in dm.items()}})
      improved = val_loss < best_loss
      if improved:
        best_loss, best = val_loss, jax.device_get((state.params, state.batch_stats))
      bar.set_postfix(train_loss=f'{train_loss:.4f}', val_loss=f'{val_loss:.4f}')
      logging.info('epoch %d/%d: train loss %.4f, val loss %.4f, val R2 v %.3f a %.3f%s',
                   epoch + 1, config.train.num_epochs, train_loss, val_loss,
                   val_m['valence']['r2'], val_m['arousal']['r2'],
                   ' (best)' if improved else '')
  writer.flush()
  state = state.replace(params=jax.device_put(best[0], replicated),
                        batch_stats=jax.device_put(best[1], replicated))
  preds = {split: predict(p_eval, state, input_pipeline.eval_batches(
               ds, config.train.eval_batch_size), data_sharding, modality)
           for split, ds in splits.items()}
  return report.write_report(os.path.join(workdir, 'report'), preds, history)

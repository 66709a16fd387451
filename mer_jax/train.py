"""Training and evaluation: `train_and_evaluate(config, workdir)`.

Pure jitted steps over a global batch sharded on a 'data' mesh axis of every local
device (parameters replicated; BatchNorm statistics over the global batch), AdamW on the
task's loss, per-epoch validation over every example, reduce-on-plateau or cosine
learning rate, early stopping, Orbax checkpoints (re-running the same command resumes),
clu metrics and TensorBoard, and a final report from the best epoch.

Tasks (`config.task`): 'fusion' regresses (valence, arousal) with the MSE, selected on
the validation MSE; 'siamese' (`mer_jax.siamese`) trains the contrastive audio-lyrics
model, selected on validation retrieval (`config.siamese.selection`).
"""


import dataclasses
import functools
import json
import logging
import os
from typing import Any, Callable, Iterable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metric_writers, metrics as clu_metrics, periodic_actions
from flax.training import early_stopping, train_state
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from mer_jax import (checkpointing, input_pipeline, losses, metrics, models, optim, report,
                     siamese)

# Config fields (or prefixes) that may differ when a workdir is resumed: they do not
# change the numbers of the run.
RESUMABLE_CHANGES = ('train.num_epochs', 'job', 'sweep.', 'data.num_workers',
                     'train.text_batch_size', 'train.prefetch', 'exp3.', 'cross.',
                     'eval.')


class TrainState(train_state.TrainState):
  batch_stats: Any


@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output('loss')
  grad_norm: clu_metrics.Average.from_output('grad_norm')
  param_norm: clu_metrics.Average.from_output('param_norm')


@flax.struct.dataclass
class EvalMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output('loss')  # Per-song MSE over both dimensions.
  valence_mse: clu_metrics.Average.from_output('valence_se')
  arousal_mse: clu_metrics.Average.from_output('arousal_se')
  valence_mae: clu_metrics.Average.from_output('valence_ae')
  arousal_mae: clu_metrics.Average.from_output('arousal_ae')


def make_mesh() -> jax.sharding.Mesh:
  """1-D mesh over every local device; batches are split along 'data'."""
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def create_train_state(config: ml_collections.ConfigDict, model: models.FusionRegressor,
                       rng: jax.Array, inputs: dict, total_steps: int,
                       text_params: Any = None) -> TrainState:
  """Initialises parameters from the shapes of `inputs`; a fine-tuned text tower
  starts from `text_params` (its pretrained `bert` subtree)."""
  # Jitted: run eagerly, init and the optimizer state compile op by op (seconds).
  variables = jax.jit(functools.partial(model.init, train=False))({'params': rng}, inputs)
  params = variables['params']
  if 'text' in params:
    if text_params is None:
      raise ValueError('the fine-tuned text tower needs its pretrained parameters')
    params = {**params, 'text': {'bert': text_params}}
  tx = optim.create_optimizer(config, params, total_steps)
  return jax.jit(lambda p, bs: TrainState.create(
      apply_fn=model.apply, params=p, batch_stats=bs, tx=tx))(
          params, variables.get('batch_stats', {}))


def fusion_loss(pred: jax.Array, batch: dict, rng: jax.Array) -> jax.Array:
  """MSE of (valence, arousal) predictions [batch, 2] against batch['targets']."""
  del rng
  return losses.mse(pred, batch['targets'])


def train_step(state: TrainState, batch: dict, rng: jax.Array,
               loss_fn: Callable = fusion_loss) -> tuple[TrainState, TrainMetrics]:
  """One optimizer step on `loss_fn(model outputs, batch, rng)` (default: the MSE);
  dropout rng = fold_in(rng, step), the loss's rng (negative sampling) folded from it."""
  dropout_rng = jax.random.fold_in(rng, state.step)

  def objective(params):
    out, updates = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats}, batch['inputs'],
        train=True, rngs={'dropout': dropout_rng}, mutable=['batch_stats'])
    return loss_fn(out, batch, jax.random.fold_in(dropout_rng, 1)), updates

  (loss, updates), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
  state = state.apply_gradients(grads=grads, batch_stats=updates.get('batch_stats', {}))
  return state, TrainMetrics.single_from_model_output(
      loss=loss, grad_norm=optax.global_norm(grads),
      param_norm=optax.global_norm(state.params))


def eval_step(state: TrainState, batch: dict) -> tuple[dict, EvalMetrics]:
  """{'preds': [batch, 2] (valence, arousal, 0..1)} and masked metrics."""
  pred = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats},
                        batch['inputs'], train=False)
  err = pred - batch['targets']
  return {'preds': pred}, EvalMetrics.single_from_model_output(
      loss=jnp.mean(err ** 2, axis=-1), valence_se=err[:, 0] ** 2,
      arousal_se=err[:, 1] ** 2, valence_ae=jnp.abs(err[:, 0]),
      arousal_ae=jnp.abs(err[:, 1]), mask=batch['mask'])


def device_batch(batch: dict, keys: tuple[str, ...], sharding) -> dict:
  """Host batch -> {'inputs': {...}, 'targets', 'mask', 'quadrant'} on the devices,
  sharded."""
  out = {'inputs': {k: batch[k] for k in keys}}
  out.update({k: batch[k] for k in ('targets', 'mask', 'quadrant') if k in batch})
  return jax.device_put(out, sharding)


_EXAMPLE_FIELDS = ('targets', 'song_id', 'quadrant', 'official_quadrant', 'congruent')


def fusion_summary(outputs: dict) -> dict[str, float]:
  """R^2 per dimension of one split's predictions."""
  return {f'{d}_r2': dm['r2'] for d, dm in
          metrics.per_dimension(outputs['targets'], outputs['preds']).items()}


def evaluate(eval_fn: Callable, state: TrainState, batches: Iterable[dict],
             keys: tuple[str, ...], sharding, summarize: Callable = fusion_summary
             ) -> tuple[dict[str, np.ndarray], dict]:
  """Runs over padded eval batches.

  Returns:
    (the model outputs and the batch's targets, song_id, quadrant, congruent of the
    real examples, in order; the summary: clu metrics, `summarize(outputs)` and
    'selection', the lower-is-better value that picks checkpoints: default 'loss').
  """
  out: dict[str, list] = {}
  collection = None
  for batch in batches:
    outputs, m = eval_fn(state, device_batch(batch, keys, sharding))
    if m is not None:
      collection = m if collection is None else collection.merge(m)
    keep = batch['mask'] > 0
    for k, v in outputs.items():
      out.setdefault(k, []).append(np.asarray(v)[keep])
    for k in _EXAMPLE_FIELDS:
      if k in batch:
        out.setdefault(k, []).append(batch[k][keep])
  outputs = {k: np.concatenate(v) for k, v in out.items()}
  summary = ({} if collection is None else
             {k: float(v) for k, v in collection.compute().items()})
  summary.update(summarize(outputs))
  summary.setdefault('selection', summary['loss'])
  return outputs, summary


@dataclasses.dataclass(frozen=True)
class Task:
  """What differs between the regressor and the Siamese model in the shared loop."""
  loss_fn: Callable  # (model outputs, device batch, rng) -> scalar.
  eval_step: Callable  # (state, device batch) -> (outputs dict, clu metrics | None).
  summarize: Callable  # Host outputs of a split -> {metric: value}.
  history_keys: tuple[str, ...]  # Validation metrics kept per epoch (val_<key>).
  write_report: Callable  # (folder, {split: outputs}, history) -> results.


def get_task(config: ml_collections.ConfigDict) -> Task:
  if config.task == 'siamese':
    return Task(siamese.loss_fn(config), siamese.eval_step, siamese.summarizer(config),
                ('loss', 'mrr', 'matched_auc'), siamese.write_report)
  return Task(fusion_loss, eval_step, fusion_summary, ('loss', 'valence_r2',
                                                      'arousal_r2'),
              report.write_report)


def _check_finite(first_step: int, step_metrics: list[TrainMetrics]) -> None:
  """Raises at the first step of an epoch (numbered from `first_step`) whose loss is not
  finite; read once per epoch, so the steps never wait for the host."""
  losses = np.asarray(jax.device_get([m.loss.compute() for m in step_metrics]))
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    raise FloatingPointError(
        f'non-finite training loss ({losses[bad[0]]}) at step {first_step + bad[0]}: '
        'stopping; the checkpoints saved before it are intact')


def _flat(config: ml_collections.ConfigDict) -> dict:
  out = {}

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, f'{prefix}{k}.')
      else:
        out[f'{prefix}{k}'] = list(v) if isinstance(v, tuple) else v
  walk(config.to_dict(), '')
  return out


def _check_same_config(saved: dict, config: ml_collections.ConfigDict, workdir: str):
  from configs import default
  now = _flat(config)
  # A field added after the run was saved: the run behaved as its default.
  base = _flat(default.get_config())
  diff = sorted(k for k in set(saved) | set(now)
                if saved.get(k, base.get(k)) != now.get(k)
                and not k.startswith(RESUMABLE_CHANGES))
  if diff:
    raise ValueError(
        f'{workdir} holds a run with a different config ({", ".join(diff)}); use a new '
        'workdir or the same config to resume')


def warm_start_audio(state: TrainState, workdir: str) -> TrainState:
  """`state` with its audio tower (parameters and BatchNorm statistics) replaced by the
  best checkpoint's of the run in `workdir` (same tower settings)."""
  best, saved = checkpointing.restore_best(workdir)
  params, stats = dict(state.params), dict(state.batch_stats)
  for tree, name in ((params, 'params'), (stats, 'batch_stats')):
    if 'audio' not in tree:
      continue
    new = saved.get(name, {}).get('audio')
    shapes = jax.tree.map(np.shape, tree['audio'])
    if new is None or jax.tree.map(np.shape, new) != shapes:
      raise ValueError(f'{workdir}: its audio tower does not match this model\'s '
                       '(config.model widths, convs_per_block, audio_dim, ... differ)')
    tree['audio'] = jax.tree.map(lambda n, o: jnp.asarray(n, o.dtype), new, tree['audio'])
  logging.info('audio tower initialised from %s (step %d)', workdir, best)
  # Optimizer moments start at zero either way; only the parameters change.
  return state.replace(params=params, batch_stats=stats)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Prepares data if needed, trains (resuming from `workdir`), evaluates the best
  epoch on every split and writes the report.

  Returns:
    The task's report: for 'fusion' {split: {dimension: {metric: value}}}, for
    'siamese' {split: {retrieval metric: value}}, of the best-validation parameters.
  """
  from data_prep import prepare as prepare_lib
  from mer_jax import bert, tokenization
  os.makedirs(workdir, exist_ok=True)
  builder = prepare_lib.prepare(config)
  task = get_task(config)
  keys = models.input_keys(config)
  lookups = input_pipeline.lookups(builder, config, keys)
  bert_config = text_params = None
  if 'token_ids' in keys:
    bert_config, text_params = bert.load_bert(config.text.encoder)
  n_dev = jax.device_count()
  for name in ('batch_size', 'eval_batch_size'):
    if config.train[name] % n_dev:
      raise ValueError(f'config.train.{name}={config.train[name]} is not divisible by '
                       f'the {n_dev} devices')
  mesh = make_mesh()
  data_sharding = NamedSharding(mesh, P('data'))
  replicated = NamedSharding(mesh, P())

  splits = {s: input_pipeline.load_split(builder, s, lookups)
            for s in input_pipeline.split_names(builder)}
  for s in ('train', 'validation'):
    if s not in splits:
      raise ValueError(f'prepared data in {builder.data_dir} has no {s!r} examples '
                       '(see prep_report.md there)')
  splits, n_train = input_pipeline.hold_out_fold(builder, splits, config)
  steps_per_epoch = n_train // config.train.batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'{n_train} training examples < batch size {config.train.batch_size}')
  total = steps_per_epoch * config.train.num_epochs

  model = models.create_model(config, bert_config)
  init_rng, dropout_rng = jax.random.split(jax.random.key(config.seed))
  dummy = input_pipeline.dummy_batch(builder, lookups, config.train.batch_size)
  state = create_train_state(config, model, init_rng,
                             {k: dummy[k] for k in keys}, total, text_params)
  if config.model.init_audio_from:
    state = warm_start_audio(state, config.model.init_audio_from)
  state = jax.device_put(state, replicated)
  p_train = jax.jit(functools.partial(train_step, loss_fn=task.loss_fn), donate_argnums=0,
                    out_shardings=(replicated, replicated))
  p_eval = jax.jit(task.eval_step, out_shardings=(replicated, replicated))
  run_eval = functools.partial(evaluate, p_eval, keys=keys, sharding=data_sharding,
                               summarize=task.summarize)

  preprocessing = dict(builder.info.metadata)
  preprocessing['encoder_identity'] = tokenization.encoder_identity(config.text.encoder)
  preprocessing['pooling'] = config.text.pooling
  ckpt = checkpointing.Checkpointer(workdir, config.train.keep_checkpoints)
  stopper = early_stopping.EarlyStopping(min_delta=config.train.early_stopping_min_delta,
                                         patience=config.train.early_stopping_patience)
  plateau_state = optim.plateau(config).init({})
  meta = {'epoch': 0, 'history': [], 'config': _flat(config),
          'preprocessing': preprocessing}
  latest = ckpt.latest_step()
  if latest is not None:
    saved_meta = ckpt.restore_meta(latest)
    _check_same_config(saved_meta['config'], config, workdir)
    state, meta = ckpt.restore(latest, state)
    meta['config'] = _flat(config)
    stopper = stopper.replace(**meta['early_stopping'])
    plateau_state = plateau_state._replace(**{
        k: jnp.asarray(v, getattr(plateau_state, k).dtype)
        for k, v in meta['plateau'].items()})
    logging.info('resuming %s from step %d (epoch %d)', workdir, latest, meta['epoch'])
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump({'config': config.to_dict(), 'preprocessing': preprocessing}, f, indent=2,
              default=str)

  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  if latest is None:
    writer.write_hparams({k: (str(v) if isinstance(v, list) else v)
                          for k, v in _flat(config).items()})
  progress = periodic_actions.ReportProgress(num_train_steps=total, writer=writer)
  start_epoch = meta['epoch']
  put = functools.partial(device_batch, keys=keys, sharding=data_sharding)
  step = int(state.step)  # Counted on the host: reading state.step would wait for it.
  with tqdm(total=total, initial=step, desc='train', unit='step') as bar:
    for epoch in range(start_epoch, config.train.num_epochs):
      if stopper.should_stop:
        break
      step_metrics, first_step = [], step + 1
      # No host sync inside the epoch: steps are dispatched asynchronously while the
      # next batches are already on their way to the devices.
      for batch in input_pipeline.prefetch(input_pipeline.train_batches(
          splits['train'], n_train, config.train.batch_size, config.seed, epoch),
          config.train.get('prefetch', 2), put):
        state, m = p_train(state, batch, dropout_rng)
        step_metrics.append(m)
        step += 1
        progress(step)
        bar.update(1)
      _check_finite(first_step, step_metrics)
      epoch_metrics = functools.reduce(lambda a, b: a.merge(b), step_metrics)
      train_summary = {k: float(v) for k, v in epoch_metrics.compute().items()}
      _, val = run_eval(state, input_pipeline.eval_batches(
          splits['validation'], config.train.eval_batch_size))
      stopper = stopper.update(val['selection'])
      if config.train.schedule == 'plateau':
        plateau_state = optim.plateau_step(config, plateau_state, val['selection'])
        state = state.replace(opt_state=optim.set_lr_scale(
            state.opt_state, float(plateau_state.scale)))
      if not config.train.early_stopping:
        stopper = stopper.replace(should_stop=False)
      lr = float(optim.learning_rate(config, total)(step))
      lr *= optim.lr_scale(state.opt_state)
      meta['history'].append({'epoch': epoch + 1, 'step': step,
                              'train_loss': train_summary['loss'],
                              **{f'val_{k}': val[k] for k in task.history_keys},
                              'learning_rate': lr})
      meta['epoch'] = epoch + 1
      meta['early_stopping'] = {k: getattr(stopper, k) for k in (
          'best_metric', 'patience_count', 'should_stop', 'has_improved')}
      meta['plateau'] = {k: np.asarray(v).item() for k, v in plateau_state._asdict().items()}
      writer.write_scalars(step, {
          **{f'train/{k}': v for k, v in train_summary.items()},
          **{f'validation/{k}': v for k, v in val.items()}, 'learning_rate': lr})
      ckpt.save(step, state, meta, val['selection'])
      bar.set_postfix(train_loss=f'{train_summary["loss"]:.4f}',
                      val_loss=f'{val["loss"]:.4f}')
      logging.info('epoch %d/%d: train loss %.4f, %s, lr %.2e%s', epoch + 1,
                   config.train.num_epochs, train_summary['loss'],
                   ', '.join(f'val {k} {val[k]:.4f}' for k in task.history_keys), lr,
                   ' (best)' if stopper.has_improved else '')
      if stopper.should_stop:
        logging.info('early stopping after epoch %d: no validation improvement > %g '
                     'for %d epochs', epoch + 1, config.train.early_stopping_min_delta,
                     stopper.patience_count)
  writer.flush()
  best = ckpt.best_step()
  if best is None:
    raise ValueError(f'{workdir}: no epoch was trained (num_epochs = '
                     f'{config.train.num_epochs})')
  logging.info('evaluating the best checkpoint (step %d)', best)
  state, _ = ckpt.restore(best, state)
  ckpt.close()
  outputs = {split: run_eval(state, input_pipeline.eval_batches(
                 ds, config.train.eval_batch_size))[0]
             for split, ds in splits.items()}
  return task.write_report(os.path.join(workdir, 'report'), outputs, meta['history'])

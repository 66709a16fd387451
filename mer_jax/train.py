"""Training and evaluation: `train_and_evaluate(config, workdir)`.

Pure jitted steps over a global batch sharded on a 'data' mesh axis of every local
device (parameters replicated; BatchNorm statistics over the global batch), AdamW on the
task's loss, per-epoch validation over every example, reduce-on-plateau or cosine
learning rate, early stopping, Orbax checkpoints (re-running the same command resumes),
clu metrics and TensorBoard, and a final report from the best epoch.

What is specific to the model (`config.task`: its loss, eval step, metrics, checkpoint
selection and report) comes from `mer_jax.tasks`; the loop names no task.
"""

import dataclasses
import functools
import json
import logging
import os
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from clu import metric_writers, metrics as clu_metrics, periodic_actions
from flax.training import train_state
from jax.sharding import NamedSharding, PartitionSpec as P
from tqdm import tqdm

from mer_jax import (augment, checkpointing, distributed, input_pipeline, kept_split,
                     loop_state, models, optim, packing, paths, run_config, runs, tasks,
                     tokenization)
from mer_jax.evaluation import device_batch, evaluate  # noqa: F401  (train.evaluate)


class TrainState(train_state.TrainState):
  batch_stats: Any


@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output('loss')
  grad_norm: clu_metrics.Average.from_output('grad_norm')
  param_norm: clu_metrics.Average.from_output('param_norm')


def make_mesh() -> jax.sharding.Mesh:
  """1-D mesh over every local device; batches are split along 'data'."""
  return jax.make_mesh((jax.device_count(),), ('data',),
                       axis_types=(jax.sharding.AxisType.Auto,))


def create_train_state(config: ml_collections.ConfigDict, model: Any, rng: jax.Array,
                       inputs: dict, total_steps: int, text_params: Any = None,
                       audio_variables: dict | None = None) -> TrainState:
  """Initialises parameters from the shapes of `inputs`; a fine-tuned text tower
  starts from `text_params` (its pretrained `bert` subtree), a pretrained audio tower
  from `audio_variables` ({'params', 'batch_stats'} of the tower)."""
  fine_tuned_text = getattr(model, 'text', None) is not None
  if fine_tuned_text and text_params is None:
    raise ValueError('the fine-tuned text tower needs its pretrained parameters')
  variables = models.init_variables(model, rng, inputs)
  params = variables['params']
  stats = variables.get('batch_stats', {})
  if fine_tuned_text:
    params = {**params, 'text': {'bert': text_params}}
  if audio_variables is not None and 'audio' in params:
    params = {**params, 'audio': _same_shapes(audio_variables['params'], params['audio'])}
    stats = {**stats, 'audio': _same_shapes(audio_variables['batch_stats'],
                                            stats['audio'])}
  tx = optim.create_optimizer(config, params, total_steps)
  return jax.jit(lambda p, bs: TrainState.create(
      apply_fn=model.apply, params=p, batch_stats=bs, tx=tx))(params, stats)


def _same_shapes(new: Any, old: Any) -> Any:
  """`new` (pretrained values) as arrays of `old`'s dtypes; raises unless the trees
  and shapes agree."""
  if jax.tree.map(np.shape, new) != jax.tree.map(np.shape, old):
    raise ValueError('the pretrained audio tower does not match the model\'s')
  return jax.tree.map(lambda n, o: jnp.asarray(n, o.dtype), new, old)


def train_step(state: TrainState, batch: dict, rng: jax.Array, loss_fn: Callable,
               augment_fn: Callable | None = None) -> tuple[TrainState, TrainMetrics]:
  """One optimizer step on the task's `loss_fn(model outputs, batch, rng)`; dropout
  rng = fold_in(rng, step), the loss's rng (negative sampling) and the augmentation's
  (`augment_fn(batch, rng)`, `mer_jax.augment.batch_fn`) folded from it."""
  dropout_rng = jax.random.fold_in(rng, state.step)
  if augment_fn is not None:
    batch = augment_fn(batch, jax.random.fold_in(dropout_rng, 2))

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


def _epoch_summary(first_step: int, step_metrics: list[TrainMetrics]) -> dict:
  """The epoch's mean training metrics; raises at the first step (numbered from
  `first_step`) whose loss is not finite. Read once per epoch, so the steps never wait
  for the host."""
  losses = np.asarray(jax.device_get([m.loss.compute() for m in step_metrics]))
  bad = np.flatnonzero(~np.isfinite(losses))
  if bad.size:
    raise FloatingPointError(
        f'non-finite training loss ({losses[bad[0]]}) at step {first_step + bad[0]}: '
        'stopping; the checkpoints saved before it are intact')
  merged = functools.reduce(lambda a, b: a.merge(b), step_metrics)
  return {k: float(v) for k, v in merged.compute().items()}


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
                       '(config.model.audio: widths, convs_per_block, out_dim, ... differ)')
    tree['audio'] = jax.tree.map(lambda n, o: jnp.asarray(np.asarray(n), o.dtype), new,
                                 tree['audio'])  # Host values: uncommitted, as init's.
  logging.info('audio tower initialised from %s (step %d)', workdir, best)
  # Optimizer moments start at zero either way; only the parameters change.
  return state.replace(params=params, batch_stats=stats)




@dataclasses.dataclass(frozen=True)
class Data:
  """A run's prepared data, as the loop reads it."""
  builder: Any  # The prepared TFDS builder.
  splits: dict  # split -> tf.data.Dataset of model-ready examples (+ 'heldout').
  lookups: dict  # Per-song values joined by id (frozen lyrics embeddings, congruence).
  text_length: int | None  # Token columns a fine-tuned text tower reads (None: all).
  n_train: int  # Training examples.
  counts: dict  # split -> examples.


def load_data(config: ml_collections.ConfigDict, keys: tuple[str, ...]) -> Data:
  """Prepares the data if needed; the splits (training and validation required).
  Several processes: process 0 prepares and fills the caches, the others then read."""
  from data_prep import prepare as prepare_lib

  def prepared():
    builder = prepare_lib.prepare(config, min_train=config.train.batch_size)
    _check_batch(config, input_pipeline.num_examples(builder, 'train')
                 if 'train' in input_pipeline.split_names(builder) else 0,
                 builder.data_dir)
    length = (input_pipeline.text_length(builder) if 'token_ids' in keys
              and config.text.get('trim_padding', False) else None)
    return builder, input_pipeline.lookups(builder, config, keys), length  # Embeds once.

  builder, lookups, length = distributed.primary_first('prepared data', prepared)
  splits = {s: input_pipeline.load_split(builder, s, lookups, text_length=length)
            for s in input_pipeline.split_names(builder)}
  for s in ('train', 'validation'):
    if s not in splits:
      raise ValueError(f'prepared data in {builder.data_dir} has no {s!r} examples '
                       '(see prep_report.md there)')
  counts = {s: input_pipeline.num_examples(builder, s) for s in splits}
  splits, n_train = input_pipeline.hold_out_fold(builder, splits, config)
  if input_pipeline.HELDOUT in splits:
    counts[input_pipeline.HELDOUT] = counts['train'] - n_train
  counts['train'] = n_train
  _check_batch(config, n_train, builder.data_dir)
  return Data(builder, splits, lookups, length, n_train, counts)


def _check_batch(config: ml_collections.ConfigDict, n_train: int, data_dir: str) -> None:
  if n_train < config.train.batch_size:
    raise ValueError(f'{data_dir}: {n_train} training examples, fewer than the batch '
                     f'size (config.train.batch_size = {config.train.batch_size})')


def initial_state(config: ml_collections.ConfigDict, task: tasks.Task, data: Data,
                  total_steps: int, packed_rows: int = 0) -> TrainState:
  """Fresh parameters (seeded by config.seed), the audio tower warm-started when
  `config.model.init_audio_from` names a run; a fine-tuned text tower's training steps
  packed into `packed_rows` (`mer_jax.packing`; 0: not packed)."""
  from mer_jax import bert, frontends
  bert_config = text_params = None
  if 'token_ids' in task.input_keys:
    bert_config, text_params = bert.load_bert(config.text.encoder)
  model = bert.with_packed_rows(task.create_model(config, bert_config), packed_rows)
  init_rng, _ = jax.random.split(jax.random.key(config.seed))
  dummy = input_pipeline.dummy_batch(data.builder, data.lookups, config.train.batch_size,
                                     data.text_length)
  frontend = frontends.get(config)
  state = create_train_state(
      config, model, init_rng, {k: dummy[k] for k in task.input_keys}, total_steps,
      text_params, frontend.pretrained() if frontend.pretrained is not None else None)
  if config.model.init_audio_from and 'audio' in state.params:  # Not a frozen tower's.
    state = warm_start_audio(state, config.model.init_audio_from)
  return state


def check_config(config: ml_collections.ConfigDict) -> None:
  """Refuses training values that cannot work, before any data is prepared."""
  for name in ('num_epochs', 'batch_size', 'eval_batch_size'):
    value = config.train[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f'config.train.{name} = {value!r}: must be a whole number >= 1')
  if not config.data.get('labels', True) and 'pretrain' not in (config.task, config.job):
    raise ValueError('config.data.labels = False: songs without valence/arousal train '
                     'only the self-supervised tower (config.job = \'pretrain\')')
  _check_devices(config)
  if config.model.modality != 'audio':  # The lyrics tower reads token positions.
    tokenization.check_max_length(config.text.encoder, config.text.max_length)


def _check_devices(config: ml_collections.ConfigDict) -> None:
  n_dev = jax.device_count()
  for name in ('batch_size', 'eval_batch_size'):
    if config.train[name] % n_dev:
      raise ValueError(f'config.train.{name}={config.train[name]} is not divisible by '
                       f'the {n_dev} devices')


def _preprocessing(config: ml_collections.ConfigDict, builder) -> dict:
  """What prediction needs to featurise new songs as the training data was."""
  from mer_jax import tokenization
  out = dict(builder.info.metadata)
  out['encoder_identity'] = tokenization.encoder_identity(config.text.encoder)
  out['pooling'] = config.text.pooling
  return out


def _resume(ckpt: checkpointing.Checkpointer, config: ml_collections.ConfigDict,
            state: TrainState, workdir: str) -> tuple[TrainState, loop_state.LoopState]:
  """The latest checkpoint's state and loop state, or the fresh ones."""
  latest = ckpt.latest_step()
  if latest is None:
    return state, loop_state.LoopState.start(config)
  run_config.check_same(ckpt.restore_meta(latest)['config'], config, workdir)
  state, meta = ckpt.restore(latest, state)
  loop = loop_state.LoopState.from_meta(config, meta)
  logging.info('resuming %s from step %d (epoch %d)', workdir, latest, loop.epoch)
  return state, loop


def _save_config(workdir: str, config: ml_collections.ConfigDict, pre: dict) -> None:
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    json.dump({'config': config.to_dict(), 'preprocessing': pre,
               'run_format': runs.RUN_FORMAT}, f, indent=2, default=str)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Prepares data if needed, trains (resuming from `workdir`), evaluates the best
  epoch on every split and writes the report (the task's; `runs.is_finished` after).

  Returns:
    The task's report results of the best-validation parameters (fusion: {split:
    {dimension: {metric: value}}}; siamese: {split: {retrieval metric: value}}).
  """
  check_config(config)
  paths.writable_dir(workdir, 'the workdir')
  task = tasks.get_task(config)
  keys = task.input_keys
  data = load_data(config, keys)
  if task.check_data is not None:
    task.check_data(data)
  mesh = make_mesh()
  data_sharding, replicated = NamedSharding(mesh, P('data')), NamedSharding(mesh, P())
  steps_per_epoch = data.n_train // config.train.batch_size
  total = steps_per_epoch * config.train.num_epochs
  train_split = kept_split.keep(data.splits['train'], data.n_train,
                                config.train.kept_split_bytes)
  rows = (packing.training_rows(config, train_split, data.n_train,
                                input_pipeline.epoch_order)
          if 'token_ids' in keys else 0)  # Token ids: a fine-tuned tower.
  state = jax.device_put(initial_state(config, task, data, total, rows), replicated)
  _, dropout_rng = jax.random.split(jax.random.key(config.seed))
  p_train = jax.jit(functools.partial(train_step, loss_fn=task.loss_fn,
                                      augment_fn=augment.batch_fn(config, keys)),
                    donate_argnums=0, out_shardings=(replicated, replicated))
  p_eval = jax.jit(task.eval_step, out_shardings=(replicated, replicated))
  # This process's rows of each global batch (all of them with one process).
  train_rows = distributed.local_rows(data_sharding, config.train.batch_size)
  eval_rows = distributed.local_rows(data_sharding, config.train.eval_batch_size)
  run_eval = functools.partial(evaluate, p_eval, keys=keys, sharding=data_sharding,
                               summarize=task.summarize, rows=eval_rows)
  eval_batches = input_pipeline.EvalBatches(data.splits, data.counts,
                                            config.train.eval_batch_size, eval_rows)

  pre = _preprocessing(config, data.builder)
  ckpt = checkpointing.Checkpointer(workdir, config.train.keep_checkpoints)
  state, loop = _resume(ckpt, config, state, workdir)
  if distributed.is_primary():
    _save_config(workdir, config, pre)
  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0)
  if ckpt.latest_step() is None:  # A fresh run.
    writer.write_hparams({k: (str(v) if isinstance(v, list) else v)
                          for k, v in run_config.flat(config).items()})
  progress = periodic_actions.ReportProgress(num_train_steps=total, writer=writer)
  put = functools.partial(device_batch, keys=keys, sharding=data_sharding)
  step = int(state.step)  # Counted on the host: reading state.step would wait for it.
  with tqdm(total=total, initial=step, desc='train', unit='step',
            disable=not distributed.is_primary()) as bar:
    for epoch in range(loop.epoch, config.train.num_epochs):
      if loop.should_stop:
        break
      step_metrics, first_step = [], step + 1
      # No host sync inside the epoch: steps are dispatched asynchronously while the
      # next batches are already on their way to the devices (on CPU under launch.py's
      # malloc settings each step runs on this thread: allocator.run_on_calling_thread).
      for batch in input_pipeline.prefetch(packing.checked(input_pipeline.train_batches(
          train_split, data.n_train, config.train.batch_size, config.seed, epoch,
          train_rows), rows), config.train.get('prefetch', 2), put):
        state, m = p_train(state, batch, dropout_rng)
        step_metrics.append(m)
        step += 1
        progress(step)
        bar.update(1)
      train_summary = _epoch_summary(first_step, step_metrics)
      _, val = run_eval(state, eval_batches('validation'))
      loop = loop.validated(config, val['selection'])
      if config.train.schedule == 'plateau':
        scale = jax.device_put(np.float32(loop.plateau.scale), replicated)  # Global.
        state = state.replace(opt_state=optim.set_lr_scale(state.opt_state, scale))
      lr = float(optim.learning_rate(config, total)(step)) * optim.lr_scale(state.opt_state)
      loop = loop.recorded({'epoch': epoch + 1, 'step': step,
                            'train_loss': train_summary['loss'],
                            **{f'val_{k}': val[k] for k in task.history_keys},
                            'learning_rate': lr})
      ckpt.save(step, state, {**loop.to_meta(), 'config': run_config.flat(config),
                              'preprocessing': pre}, val['selection'])
      _log_epoch(writer, bar, config, task, epoch, step, train_summary, val, lr, loop)
  writer.flush()
  return _evaluate_best(config, task, ckpt, state, run_eval, eval_batches, data,
                        loop, workdir)


def _log_epoch(writer, bar, config, task, epoch, step, train_summary, val, lr, loop):
  writer.write_scalars(step, {
      **{f'train/{k}': v for k, v in train_summary.items()},
      **{f'validation/{k}': v for k, v in val.items()}, 'learning_rate': lr})
  bar.set_postfix(train_loss=f'{train_summary["loss"]:.4f}', val_loss=f'{val["loss"]:.4f}')
  logging.info('epoch %d/%d: train loss %.4f, %s, lr %.2e%s', epoch + 1,
               config.train.num_epochs, train_summary['loss'],
               ', '.join(f'val {k} {val[k]:.4f}' for k in task.history_keys), lr,
               ' (best)' if loop.stopper.has_improved else '')
  if loop.should_stop:
    logging.info('early stopping after epoch %d: no validation improvement > %g '
                 'for %d epochs', epoch + 1, config.train.early_stopping_min_delta,
                 loop.stopper.patience_count)


def _evaluate_best(config, task, ckpt, state, run_eval, eval_batches, data, loop,
                   workdir) -> dict:
  """The best checkpoint on every split -> the task's report; marks the run finished."""
  best = ckpt.best_step()
  if best is None:
    raise ValueError(f'{workdir}: no epoch was trained (num_epochs = '
                     f'{config.train.num_epochs})')
  logging.info('evaluating the best checkpoint (step %d)', best)
  state, _ = ckpt.restore(best, state)
  ckpt.close()
  outputs = {split: run_eval(state, eval_batches(split))[0] for split in data.splits}

  def write() -> dict:  # Every process has every output; process 0 writes them.
    folder = os.path.join(workdir, 'report')
    results = task.write_report(folder, outputs, list(loop.history))
    with open(os.path.join(folder, task.report_file), 'a') as f:
      f.write('\n' + '\n'.join(model_lines(config, best)) + '\n')
    runs.mark_finished(workdir, best, results)
    return results
  return distributed.primary_first('report written', write,
                                   others=lambda: runs.results(workdir))


def model_lines(config: ml_collections.ConfigDict, best: int) -> list[str]:
  """The report's account of what was trained: the towers, modality and checkpoint."""
  from mer_jax import frontends
  text = (f'{config.text.encoder} ({"fine-tuned" if config.text.trainable else "frozen"}, '
          f'{config.text.pooling} pooling)')
  lines = ['## Model', '', f'- task: {config.task}, modality: {config.model.modality}',
           f'- audio front-end: {frontends.get(config).description}']
  if config.model.modality != 'audio':
    lines.append(f'- lyrics encoder: {text}')
  return lines + [f'- best checkpoint: step {best}']

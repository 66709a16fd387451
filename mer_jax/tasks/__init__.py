"""Tasks: all that is specific to one kind of model, behind one interface (`Task`).

  fusion   valence/arousal regressor: MSE, R²/RMSE/MAE report (`tasks/fusion.py`);
           with config.model.head='gaussian' mean and sigma per dimension, Gaussian
           losses and the uncertainty report (`tasks/fusion_gaussian.py`: a head
           module, `<task>_<head>.py`, chosen by config.model.head)
  siamese  contrastive audio-lyrics model of Experiment 3: InfoNCE or pairwise margin
           loss, retrieval report, congruence (`tasks/siamese.py`)
  pretrain self-supervised audio tower: two views per song, NT-Xent, no labels
           (`tasks/pretrain.py`; job 'pretrain')

`get_task(config)` imports `mer_jax.tasks.<config.task>` (or, for a head other than
'point', `<config.task>_<config.model.head>`) and calls its `get_task(config)`; the
train loop, prediction and the jobs use only the interface, so a new task (or head) is
one new module here.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any, Callable

import ml_collections


@dataclasses.dataclass(frozen=True)
class Task:
  """What the shared train loop, evaluation and prediction need from a task."""
  name: str
  # (config, bert_config or None) -> the flax module.
  create_model: Callable[[ml_collections.ConfigDict, Any], Any]
  input_keys: tuple[str, ...]  # The batch fields the model reads.
  loss_fn: Callable  # (model outputs, device batch, rng) -> scalar training loss.
  eval_step: Callable  # (state, device batch) -> (outputs dict, clu metrics | None).
  # Host outputs of one split -> {metric: value}, with 'selection' (lower is better:
  # picks checkpoints and stops early) unless the clu metrics' 'loss' is it.
  summarize: Callable[[dict], dict]
  history_keys: tuple[str, ...]  # Validation metrics kept per epoch (val_<key>).
  write_report: Callable  # (folder, {split: outputs}, history) -> results.
  report_file: str  # The run's main report, in <workdir>/report/.
  headline: Callable[[dict], list[str]]  # results -> the lines a command prints.
  # Prediction: model.apply's keyword arguments when the lyrics features are dropped
  # (None: the task has no audio-only mode), and the one-song result from the window
  # outputs (list of model outputs, per_window) -> {...}.
  drop_lyrics_kwargs: dict | None
  song_result: Callable[[list, bool], dict]
  song_outputs: tuple[str, ...]  # The keys song_result gives besides the windows.
  # Columns of `predict.predict_prepared`'s frame from one split's outputs.
  prepared_columns: Callable[[dict], dict]
  # (train.Data) -> None, raising when the prepared data cannot train this task (e.g.
  # songs without the annotator std a loss needs); None: nothing to check.
  check_data: Callable | None = None
  # (workdir) -> a function applied to every raw model output in prediction, from what
  # the run's report stored (the gaussian head's sigma scale); None: outputs as they are.
  output_transform: Callable | None = None


def _modules() -> list[str]:
  return [m.name for m in pkgutil.iter_modules(__path__)]


def names() -> tuple[str, ...]:
  """The tasks `config.task` can name (modules of this package that are not a head of
  another: `<task>_<head>.py`)."""
  mods = _modules()
  return tuple(m for m in mods if not any(m.startswith(t + '_') for t in mods if t != m))


def heads(task: str) -> tuple[str, ...]:
  """`config.model.head` values of `task`: 'point' (the task's own module) and one per
  `<task>_<head>.py` (e.g. fusion_gaussian.py: 'gaussian')."""
  return ('point',) + tuple(m[len(task) + 1:] for m in _modules()
                            if m.startswith(task + '_'))


def get_task(config: ml_collections.ConfigDict) -> Task:
  """The task of `config.task` with the head of `config.model.head` ('point': the
  task's module; another: its `<task>_<head>` module)."""
  if config.task not in names():
    raise ValueError(f'config.task must be one of {names()}, got {config.task!r}')
  head = config.model.get('head', 'point')
  if head not in heads(config.task):
    raise ValueError(f'config.model.head must be one of {heads(config.task)} for task '
                     f'{config.task!r}, got {head!r}')
  module = config.task if head == 'point' else f'{config.task}_{head}'
  return importlib.import_module(f'{__name__}.{module}').get_task(config)


def create_model(config: ml_collections.ConfigDict, bert_config=None):
  """The configured task's model; `bert_config` is needed when the text tower is
  fine-tuned."""
  return get_task(config).create_model(config, bert_config)


def input_keys(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The batch fields the configured model reads."""
  return get_task(config).input_keys

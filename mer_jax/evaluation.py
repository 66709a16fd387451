"""Evaluation over a 'data' mesh: the task's jitted eval step on padded batches, the real
examples' outputs gathered in order (from every process when there are several).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from mer_jax import distributed


def device_batch(batch: dict, keys: tuple[str, ...], sharding) -> dict:
  """Host batch -> {'inputs': {...}, 'targets', 'target_std', 'mask', 'quadrant'} on
  the devices, sharded."""
  out = {'inputs': {k: batch[k] for k in keys}}
  out.update({k: batch[k] for k in ('targets', 'target_std', 'mask', 'quadrant')
              if k in batch})
  return distributed.global_batch(out, sharding)


_EXAMPLE_FIELDS = ('targets', 'target_std', 'song_id', 'quadrant', 'official_quadrant',
                   'congruent')


def evaluate(eval_fn: Callable, state: Any, batches: Iterable[dict],
             keys: tuple[str, ...], sharding, summarize: Callable,
             rows: slice | None = None) -> tuple[dict[str, np.ndarray], dict]:
  """Runs the task's jitted eval step (outputs replicated) over padded eval batches;
  with several processes, `batches` hold this process's `rows` of each global batch
  (`input_pipeline.eval_batches`) and every process gets every example's outputs.

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
    fields = distributed.gather_rows(
        {k: batch[k] for k in ('mask', *_EXAMPLE_FIELDS) if k in batch}, rows)
    keep = fields.pop('mask') > 0
    for k, v in (*outputs.items(), *fields.items()):
      out.setdefault(k, []).append(np.asarray(v)[keep])
  outputs = {k: np.concatenate(v) for k, v in out.items()}
  summary = ({} if collection is None else
             {k: float(v) for k, v in collection.compute().items()})
  summary.update(summarize(outputs))
  summary.setdefault('selection', summary['loss'])
  return outputs, summary



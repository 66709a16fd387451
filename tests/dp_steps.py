"""Helper for test_train.py and test_siamese.py, run in a subprocess: a few train steps on
a mesh of one device, then on the mesh of all local devices (`train.make_mesh`; set
XLA_FLAGS=--xla_force_host_platform_device_count=N before it starts), for each model in
turn (one process: the imports are paid once).

    python tests/dp_steps.py OUT_PREFIX fusion infonce pairwise
    # -> OUT_PREFIX<devices>_<mode>.npz for devices 1 and N

fusion: the regressor; infonce / pairwise: the Siamese model with that loss (negatives
from another quadrant for pairwise).
"""

import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from configs import tiny  # noqa: E402
from mer_jax import tasks, train  # noqa: E402


def main(out: str, mode: str, devices: int) -> None:
  config = tiny.get_config()
  config.model.audio.dropout = 0.3  # Dropout masks must not depend on the sharding either.
  config.model.fusion.modality_dropout = 0.3
  if mode != 'fusion':
    config.task = 'siamese'
    config.siamese.loss = mode
    config.siamese.negatives = 'other_quadrant'
  task = tasks.get_task(config)
  keys = tasks.input_keys(config)
  rng = np.random.default_rng(0)
  batches = [{'mel': rng.uniform(-80, 0, (8, 128, 64)).astype(np.float32),
              'lyrics_emb': rng.normal(size=(8, 384)).astype(np.float32),
              'targets': rng.uniform(size=(8, 2)).astype(np.float32),
              'mask': np.ones(8, np.float32),
              'quadrant': rng.integers(0, 4, 8).astype(np.int32)} for _ in range(3)]
  mesh = train.make_mesh() if devices == jax.device_count() else jax.make_mesh(
      (devices,), ('data',), devices=jax.devices()[:devices],
      axis_types=(jax.sharding.AxisType.Auto,))
  data, replicated = NamedSharding(mesh, P('data')), NamedSharding(mesh, P())
  model = tasks.create_model(config)
  state = train.create_train_state(config, model, jax.random.key(0),
                                   {k: batches[0][k] for k in keys}, total_steps=10)
  state = jax.device_put(state, replicated)
  step = jax.jit(functools.partial(train.train_step, loss_fn=task.loss_fn),
                 out_shardings=(replicated, replicated))
  eval_step = jax.jit(task.eval_step, out_shardings=(replicated, replicated))
  losses = []
  for b in batches:
    state, m = step(state, train.device_batch(b, keys, data), jax.random.key(1))
    losses.append(float(m.loss.compute()))
  outputs, m = eval_step(state, train.device_batch(batches[0], keys, data))
  flat = {jax.tree_util.keystr(k): np.asarray(v) for k, v in
          jax.tree_util.tree_leaves_with_path((state.params, state.batch_stats))}
  flat.update({f'eval_{k}': np.asarray(v) for k, v in outputs.items()})
  if m is not None:
    flat['eval_loss'] = float(m.loss.compute())
  np.savez(out, losses=np.array(losses), devices=mesh.size, **flat)


if __name__ == '__main__':
  for n in sorted({1, jax.device_count()}):
    for m in sys.argv[2:]:
      main(f'{sys.argv[1]}{n}_{m}.npz', m, n)

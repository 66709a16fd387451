"""Checkpoints: the packed state on disk, its round trip, and older checkpoints."""

import os

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax.training import train_state
from jax.sharding import NamedSharding, PartitionSpec as P

from mer_jax import checkpointing


def _state(seed: int) -> train_state.TrainState:
  """A TrainState like training's: nested params, Adam's moments and count (int32), a
  0-d step; random values."""
  rng = np.random.default_rng(seed)
  params = {'audio': {'conv': {'kernel': rng.standard_normal((3, 3, 1, 4)),
                               'bias': rng.standard_normal(4)}},
            'head': {'kernel': rng.standard_normal((4, 2)), 'bias': rng.standard_normal(2)}}
  params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
  state = train_state.TrainState.create(apply_fn=None, params=params,
                                        tx=optax.adam(1e-3))
  mu = jax.tree.map(lambda x: np.asarray(rng.standard_normal(x.shape), np.float32), params)
  adam = state.opt_state[0]._replace(mu=mu, count=np.int32(rng.integers(1, 99)))
  mesh = jax.make_mesh((1,), ('data',))
  return jax.device_put(state.replace(step=np.int32(rng.integers(1, 99)),
                                      opt_state=(adam,) + state.opt_state[1:]),
                        NamedSharding(mesh, P()))


def test_state_is_saved_as_one_array_per_dtype_and_restores_bit_for_bit(tmp_path):
  state = _state(np.random.SeedSequence().entropy % 2**32)
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(7, state, {'epoch': 1}, 0.5)
  # On disk: the leaves of each dtype raveled and concatenated in flatten order, as
  # numpy does it.
  packed = ckpt.manager.restore(7, args=ocp.args.Composite(
      state=ocp.args.StandardRestore()))['state']
  leaves = jax.tree.leaves(state)
  assert sorted(packed) == ['float32', 'int32']
  for dtype, arr in packed.items():
    want = np.concatenate([np.ravel(np.asarray(x)) for x in leaves if x.dtype == dtype])
    np.testing.assert_array_equal(np.asarray(arr), want)
  # Restored into a fresh state of the same model: every leaf, dtype and sharding.
  target = _state(0)
  back, meta = ckpt.restore(7, target)
  assert meta == {'epoch': 1}
  paths = lambda t: [p for p, _ in jax.tree_util.tree_flatten_with_path(t)[0]]  # noqa: E731
  assert paths(back) == paths(state)
  for a, b, t in zip(jax.tree.leaves(back), leaves, jax.tree.leaves(target)):
    assert a.dtype == b.dtype and a.sharding == t.sharding
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # Raw: nested dicts named as Orbax names the paths (fields, keys, indices).
  raw = ckpt.restore_raw(7)
  np.testing.assert_array_equal(raw['params']['head']['kernel'],
                                state.params['head']['kernel'])
  np.testing.assert_array_equal(raw['opt_state']['0']['mu']['audio']['conv']['bias'],
                                state.opt_state[0].mu['audio']['conv']['bias'])
  assert int(raw['step']) == int(state.step)
  ckpt.close()


def test_a_checkpoint_of_another_model_is_refused_by_name(tmp_path):
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.save(1, _state(1), {}, 0.5)
  other = _state(2)
  other = other.replace(params={**other.params, 'head': {
      'kernel': np.zeros((4, 3), np.float32), 'bias': np.zeros(3, np.float32)}})
  with pytest.raises(ValueError, match=f'{tmp_path}/checkpoints/1: the checkpoint'):
    ckpt.restore(1, other)
  ckpt.close()


def test_checkpoints_saved_leaf_by_leaf_still_restore(tmp_path):
  """Runs trained before packing: Orbax's StandardSave of the TrainState itself."""
  state = _state(3)
  ckpt = checkpointing.Checkpointer(str(tmp_path))
  ckpt.manager.save(4, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({'epoch': 2})),
      metrics={'selection': 0.1})
  ckpt.manager.wait_until_finished()
  assert not os.path.exists(os.path.join(ckpt.directory, '4', checkpointing.LAYOUT))
  back, meta = ckpt.restore(4, _state(0))
  assert meta == {'epoch': 2}
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  ckpt.close()
  step, raw = checkpointing.restore_best(str(tmp_path))
  assert step == 4
  np.testing.assert_array_equal(raw['params']['audio']['conv']['kernel'],
                                state.params['audio']['conv']['kernel'])

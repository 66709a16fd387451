"""mer_jax.augment: each augmentation does what it must, checked on fixed rngs against
numpy re-statements of its definition (crop = a contiguous slice, shift = moved frames
with floor fill, gain = a constant dB offset re-floored, masks = floor exactly where the
spans/tiles are), the masked share against its expectation, mixup's label weights."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from mer_jax import augment
from mer_jax.audio_features import DB_FLOOR

MELS, FRAMES = 16, 40


def _mel(seed=0, batch=None):
  rng = np.random.default_rng(seed)
  shape = (MELS, FRAMES) if batch is None else (batch, MELS, FRAMES)
  return rng.uniform(-60, 0, shape).astype(np.float32)


def test_time_crop_is_a_contiguous_slice_from_every_start():
  mel = _mel()
  starts = set()
  for i in range(200):
    out = np.asarray(augment.time_crop(jnp.asarray(mel), jax.random.key(i), 10))
    assert out.shape == (MELS, 10)
    (s,) = [s for s in range(FRAMES - 9) if np.array_equal(mel[:, s:s + 10], out)]
    starts.add(s)
  assert starts == set(range(FRAMES - 9))  # 0..30, all reached.
  same = augment.time_crop(jnp.asarray(mel), jax.random.key(0), FRAMES)
  np.testing.assert_array_equal(same, mel)


def test_time_shift_moves_frames_and_fills_the_floor():
  mel = _mel(1)
  shifts = set()
  for i in range(200):
    out = np.asarray(augment.time_shift(jnp.asarray(mel), jax.random.key(i), 5))
    found = []
    for s in range(-5, 6):
      want = np.full_like(mel, DB_FLOOR)
      if s >= 0:
        want[:, s:] = mel[:, :FRAMES - s]
      else:
        want[:, :s] = mel[:, -s:]
      if np.array_equal(out, want):
        found.append(s)
    assert len(found) == 1
    shifts.add(found[0])
  assert shifts == set(range(-5, 6))


def test_gain_is_one_offset_refloored():
  mel = _mel(2)
  mel[0, :5] = DB_FLOOR  # Silent cells stay silent for a negative gain.
  offsets = []
  for i in range(100):
    out = np.asarray(augment.gain(jnp.asarray(mel), jax.random.key(i), 6.0))
    g = float(out[5, 20] - mel[5, 20])
    assert abs(g) <= 6.0
    np.testing.assert_allclose(out, np.maximum(mel + np.float32(g), DB_FLOOR), atol=1e-5)
    assert out.min() >= DB_FLOOR
    offsets.append(g)
  assert min(offsets) < -4 and max(offsets) > 4  # Both directions, near the bounds.


def test_spec_masks_set_spans_to_the_floor_and_mask_the_expected_share():
  mel = _mel(3)
  for i in range(100):
    out = np.asarray(augment.spec_mask(jnp.asarray(mel), jax.random.key(i), 2, 6, 1, 4))
    masked = out != mel
    assert np.all(out[masked] == DB_FLOOR)  # Masked cells are floor, the rest untouched.
    cols = masked.all(axis=0)
    rows = masked.all(axis=1)
    np.testing.assert_array_equal(masked, cols[None, :] | rows[:, None])
    runs = np.flatnonzero(np.diff(np.concatenate([[0], cols.astype(int), [0]])))
    widths = runs[1::2] - runs[::2]
    assert len(widths) <= 2 and rows.sum() <= 4 and widths.sum() <= 12
  # One time mask of width ~ U{0..W}: E[masked frames] = W / 2.
  batch = jnp.asarray(np.repeat(mel[None], 4000, axis=0))
  cfg = ml_collections.ConfigDict(dict(crop_frames=0, shift_frames=0, gain_db=0.0,
                                       time_masks=1, time_mask_width=10, freq_masks=0,
                                       freq_mask_width=0))
  out = np.asarray(augment.augment_mel(batch, jax.random.key(7), cfg))
  frames_masked = (out == DB_FLOOR).all(axis=1).sum(axis=1)
  assert frames_masked.max() == 10 and frames_masked.min() == 0
  # std of U{0..10} is 3.16: the mean of 4000 is within 0.2 of 5 (4 standard errors).
  assert abs(frames_masked.mean() - 5.0) < 0.2


def test_patch_mask_masks_whole_tiles_of_the_asked_share():
  mel = _mel(4)  # 16 x 40 with 8 x 8 tiles: 2 x 5 = 10 tiles.
  for i in range(20):
    out = np.asarray(augment.patch_mask(jnp.asarray(mel), jax.random.key(i), 0.7, 8))
    tiles = (out == DB_FLOOR).reshape(2, 8, 5, 8).transpose(0, 2, 1, 3).reshape(10, 64)
    per_tile = tiles.sum(axis=1)
    assert set(per_tile.tolist()) <= {0, 64} and (per_tile == 64).sum() == 7
    np.testing.assert_array_equal(out[out != DB_FLOOR], mel[out != DB_FLOOR])


def test_each_example_draws_its_own_augmentation_and_a_key_repeats_it():
  cfg = ml_collections.ConfigDict(dict(crop_frames=30, shift_frames=3, gain_db=3.0,
                                       time_masks=2, time_mask_width=5, freq_masks=2,
                                       freq_mask_width=3))
  batch = jnp.asarray(np.repeat(_mel(5)[None], 3, axis=0))
  fn = jax.jit(lambda m, k: augment.augment_mel(m, k, cfg))
  a = np.asarray(fn(batch, jax.random.key(1)))
  b = np.asarray(fn(batch, jax.random.key(1)))
  assert a.shape == (3, MELS, 30)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a[0], a[1]) and not np.array_equal(a[1], a[2])
  assert a.min() >= DB_FLOOR


def test_mixup_mixes_inputs_and_labels_with_the_same_weights():
  n = 512
  c = np.linspace(0.0, 1.0, n).astype(np.float32)
  inputs = {'mel': jnp.asarray(np.broadcast_to(-80 + 80 * c[:, None, None],
                                               (n, MELS, FRAMES)).copy()),
            'lyrics_emb': jnp.asarray(np.stack([c, 2 * c], axis=1)),
            'quadrant': jnp.arange(n)}
  targets = jnp.asarray(np.stack([c, 1 - c], axis=1))
  mixed, t = augment.mixup(inputs, targets, jax.random.key(3), alpha=0.4)
  mel_c = (np.asarray(mixed['mel'])[:, 0, 0] + 80) / 80  # The mixed c of each example.
  np.testing.assert_allclose(np.asarray(mixed['mel']).std(axis=(1, 2)), 0, atol=1e-4)
  np.testing.assert_allclose(np.asarray(t), np.stack([mel_c, 1 - mel_c], axis=1),
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(mixed['lyrics_emb']),
                             np.stack([mel_c, 2 * mel_c], axis=1), atol=1e-5)
  np.testing.assert_array_equal(mixed['quadrant'], inputs['quadrant'])  # Not mixed.
  # Each mixed value lies between its own and its partner's: lam in 0..1, mean 0.5.
  assert not np.allclose(mel_c, c)
  augment.check_mixup(('mel', 'lyrics_emb'))
  with pytest.raises(ValueError, match='token_ids'):
    augment.check_mixup(('mel', 'token_ids', 'attention_mask'))

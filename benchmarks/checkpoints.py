"""A training run's per-epoch checkpoint save, as Orbax writes the TrainState leaf by
leaf vs packed (one array per dtype; mer_jax/checkpointing.py), side by side.

    python benchmarks/checkpoints.py --out=benchmarks/out

The states are the demo's TrainStates (configs/demo.py at 1292 frames, batch 16) of
Models 1, 4 and 5 (Model 5: MiniLM fine-tuned, Adam moments for 22.7 M parameters),
fresh from the project's own `create_train_state`. Each variant saves `--repeats` steps
into its own checkpoint folder (the run's keep-3-plus-best policy deletes older steps,
as in training), timed in turns. Checks that the packed checkpoint restores every leaf
bit for bit. Writes <out>/checkpoints.csv and .md (benchmarks/common.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # noqa: E402
import numpy as np  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import common  # noqa: E402
from mer_jax import bert, checkpointing, tasks, train, variants  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('out', 'benchmarks/out', 'Folder for checkpoints.csv/.md.')
flags.DEFINE_integer('repeats', 8, 'Saves per variant (after one warm-up save each).')


def demo_state(model_name: str) -> train.TrainState:
  """A fresh demo TrainState of `model_name` (its initial parameters)."""
  from configs import demo
  config = variants.apply(demo.get_config(), model_name)
  config.audio.num_frames = 1292
  bert_config, text_params = bert.load_bert(config.text.encoder)
  model = tasks.get_task(config).create_model(config, bert_config)
  b, length = config.train.batch_size, 64
  inputs = {'mel': np.zeros((b, config.audio.n_mels, 1292), np.float32),
            'lyrics_emb': np.zeros((b, bert_config.hidden_size), np.float32),
            'token_ids': np.zeros((b, length), np.int32),
            'attention_mask': np.ones((b, length), np.int32)}
  keys = tasks.input_keys(config)
  return train.create_train_state(config, model, jax.random.key(0),
                                  {k: inputs[k] for k in keys}, 1000,
                                  text_params if config.text.trainable else None)


class LeafByLeaf(checkpointing.Checkpointer):
  """The checkpoint as saved before packing: Orbax's StandardSave of the TrainState."""

  def save(self, step, state, meta, selection):
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
        metrics={'selection': float(selection)})
    self.manager.wait_until_finished()


def main(argv):
  del argv
  rows, checks = [], {}
  for name in ('model1', 'model4', 'model5'):
    state = demo_state(name)
    leaves = jax.tree.leaves(state)
    mb = sum(x.nbytes for x in leaves) / 1e6
    root = tempfile.mkdtemp()
    try:
      savers = {'orbax, leaf by leaf': LeafByLeaf(os.path.join(root, 'a')),
                'packed': checkpointing.Checkpointer(os.path.join(root, 'b'))}
      steps = {k: iter(range(1, FLAGS.repeats + 2)) for k in savers}

      def saver(k):
        def save():
          s = next(steps[k])
          savers[k].save(s, state, {'epoch': s}, 1.0 / s)
        return save
      for k in savers:  # Warm-up: the packing's compile, Orbax's first folders.
        saver(k)()
      t = common.interleaved_medians({k: saver(k) for k in savers}, FLAGS.repeats)
      packed = savers['packed']
      back, _ = packed.restore(packed.latest_step(), state)
      checks[f'{name}_max_abs_diff'] = max(
          float(np.abs(np.asarray(a) - np.asarray(b)).max(initial=0))
          for a, b in zip(leaves, jax.tree.leaves(back)))
      for k in savers:
        savers[k].close()
    finally:
      shutil.rmtree(root)
    base = t['orbax, leaf by leaf']
    for k, v in t.items():
      rows.append({'benchmark': f'{name} checkpoint save ({len(leaves)} leaves, '
                                f'{mb:.0f} MB)', 'variant': k, 'median_s': v,
                   'unit_per_s': 1 / v, 'ratio': base / v,
                   'baseline_variant': 'orbax, leaf by leaf'})
  common.write_checks(FLAGS.out, 'checkpoints', checks)
  if any(v != 0 for v in checks.values()):
    raise SystemExit(f'packed checkpoints restored different values: {checks}')
  common.write_table(rows, FLAGS.out, 'checkpoints',
                     f'Checkpoint save per epoch ({time.strftime("%Y-%m-%d %H:%M")})',
                     unit='saves/s')


if __name__ == '__main__':
  app.run(main)

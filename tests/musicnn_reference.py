"""The original musicnn, as shipped: the MSD_musicnn `.meta` graph run in TensorFlow 2.

The full graph holds training nodes (Adam, gradients) that no longer import in TF 2.21;
the sub-graph computing `model/Sigmoid` does, once the nodes' `_output_shapes` attributes
are dropped. Its variables are replaced by constants holding the checkpoint's values
(read with TF's own checkpoint reader), so the graph runs as the extractor ran it
(`is_training` False). Nothing of ours is used: this is the independent reference for
tests/test_musicnn.py and benchmarks/musicnn.py.
"""

from __future__ import annotations

import os

import numpy as np

PENULTIMATE = 'model/batch_normalization_10/batchnorm/add_1:0'
TAGS = 'model/Sigmoid:0'


class OriginalMusicnn:
  """`run(patches [n, 187, 96]) -> (tags [n, 50], penultimate [n, 200])`."""

  def __init__(self, folder: str, batch_size: int = 1):
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2
    prefix = os.path.join(folder, '')
    meta = meta_graph_pb2.MetaGraphDef()
    with open(prefix + '.meta', 'rb') as f:
      meta.ParseFromString(f.read())
    sub = tf.compat.v1.graph_util.extract_sub_graph(meta.graph_def, ['model/Sigmoid'])
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    for node in sub.node:
      node.attr.pop('_output_shapes', None)
      if node.op == 'VariableV2':  # Freeze: the checkpoint's value as a constant.
        value = reader.get_tensor(node.name)
        node.op = 'Const'
        for key in list(node.attr):
          del node.attr[key]
        node.attr['dtype'].type = tf.float32.as_datatype_enum
        node.attr['value'].tensor.CopyFrom(tf.make_tensor_proto(value))
    self.graph = tf.Graph()
    with self.graph.as_default():
      tf.graph_util.import_graph_def(sub, name='')
    self.session = tf.compat.v1.Session(graph=self.graph)
    self.batch_size = batch_size  # The extractor runs one patch at a time.

  def run(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    tags, feats = [], []
    for i in range(0, len(patches), self.batch_size):
      t, p = self.session.run([TAGS, PENULTIMATE], feed_dict={
          'model/Placeholder:0': patches[i:i + self.batch_size],
          'model/Placeholder_2:0': False})
      tags.append(t)
      feats.append(p)
    return np.concatenate(tags), np.concatenate(feats)


def extractor_log_mel(y: np.ndarray, saturate: bool = False) -> np.ndarray:
  """musicnn/extractor.py's batch_data spectrogram, line for line, from a waveform
  (its librosa.load is left out: the tests feed the same waveform to both).

  saturate: where 10000 * mel overflows float16 (inf in the extractor), float16's
  largest value instead: mer_jax.musicnn.log_mel's one documented change."""
  import librosa
  audio_rep = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512,
                                             n_mels=96).T
  audio_rep = audio_rep.astype(np.float16)
  with np.errstate(over='ignore'):
    scaled = 10000 * audio_rep
  if saturate:
    scaled[np.isinf(scaled)] = np.finfo(np.float16).max
  return np.log10(scaled + 1)


def extractor_patches(audio_rep: np.ndarray, n_frames: int = 187,
                      overlap: int = 187) -> np.ndarray:
  """extractor.py's batching of a spectrogram in patches (`overlap` is its hop)."""
  last_frame = audio_rep.shape[0] - n_frames + 1
  return np.stack([audio_rep[t:t + n_frames] for t in range(0, last_frame, overlap)])

"""TFDS builder that writes prepared songs as TFRecord shards (train/validation/test).

One example per song: log-mel [n_mels, num_frames] float32 dB (floored and padded at
`audio_features.STORED_FLOOR`, below the model's -80 dB floor, which the input pipeline
applies), WordPiece ids and mask [max_length] int32, valence and arousal (0..1) and
their annotator std (NaN if not released), quadrant (Q1..Q4 of the labels), the
release's official quadrant (-1 if none), congruent (1, 0, -1 unknown) and song id.
The dataset-wide reference power and every feature parameter are
stored in the dataset's `metadata.json` (`builder.info.metadata`), so whoever reads the
prepared data (training, prediction, a notebook) uses the same constants.

The builder's config name is a hash of everything the examples depend on (the manifest
and the files it names, the feature parameters, the tokenizer vocabulary): a prepared
dataset is reused as long as nothing changed and rebuilt otherwise. TFDS writes into a
temporary folder and renames it at the end, so a killed run leaves no dataset that loads.
"""

from __future__ import annotations

import csv
import os
from typing import Callable

import numpy as np
import tensorflow_datasets as tfds

from data_prep.manifest import QUADRANTS, SPLITS


class _LocalInfo(tfds.core.DatasetInfo):
  """The DatasetInfo of a dataset that exists only where it is prepared.

  A builder without prepared data asks TFDS's GCS bucket for a published copy's info,
  and TFDS makes an empty /tmp/tmp*tfds folder for it that it never removes, even when
  GCS is off (its default): one per builder made before preparing, hundreds in a test
  session. Nothing of ours is published, so nothing is looked up."""

  def initialize_from_bucket(self) -> None:
    pass


class MerDataset(tfds.core.GeneratorBasedBuilder):
  """Prepared songs of one dataset; built by `data_prep.prepare`."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Log-mel + WordPiece ids, dataset-wide dB reference.'}

  def __init__(self, *, config_name: str, shapes: dict, compute: Callable | None = None,
               data_dir: str, extra_features: dict | None = None,
               side_files: Callable[[str, list[str]], None] | None = None, **kwargs):
    """
    Args:
      config_name: name of the prepared variant (dataset name + parameter hash).
      shapes: {'n_mels', 'num_frames', 'max_length'}.
      compute: () -> (examples per split, metadata dict, report rows); called only
        when the dataset is not prepared yet (MerBeamDataset: see there).
      data_dir: root folder of prepared datasets.
      extra_features: name -> tfds feature the audio front-end adds per song.
      side_files: (folder, song ids written) -> None: the front-end's files beside
        the TFRecords, written with the report.
    """
    self._shapes = shapes
    self._extra_features = dict(extra_features or {})
    self._side_files = side_files
    self._compute = compute
    self.report_rows = None
    super().__init__(
        data_dir=data_dir,
        config=tfds.core.BuilderConfig(name=config_name, version=self.VERSION),
        **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    s = self._shapes
    return _LocalInfo(
        builder=self,
        description='Songs with log-mel spectrograms, lyrics WordPiece ids and '
                    'valence/arousal labels (0..1).',
        features=tfds.features.FeaturesDict({
            'song_id': tfds.features.Text(),
            'mel': tfds.features.Tensor(shape=(s['n_mels'], s['num_frames']),
                                        dtype=np.float32),
            'token_ids': tfds.features.Tensor(shape=(s['max_length'],), dtype=np.int32),
            'attention_mask': tfds.features.Tensor(shape=(s['max_length'],),
                                                   dtype=np.int32),
            'valence': tfds.features.Scalar(dtype=np.float32),
            'arousal': tfds.features.Scalar(dtype=np.float32),
            # Quadrant of the valence/arousal labels at the 0.5 thresholds.
            'quadrant': tfds.features.ClassLabel(names=QUADRANTS),
            # The release's own quadrant label (0..3, e.g. MERGE), -1 when none.
            'official_quadrant': tfds.features.Scalar(dtype=np.int32),
            'congruent': tfds.features.Scalar(dtype=np.int32),
            # Annotator standard deviations (0..1 scale) where released, else NaN.
            'valence_std': tfds.features.Scalar(dtype=np.float32),
            'arousal_std': tfds.features.Scalar(dtype=np.float32),
            **self._extra_features,
        }),
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Inputs are local files named by the manifest.
    if self._compute is None:
      raise RuntimeError(f'{self.data_dir}: prepared dataset missing and no inputs given')
    examples, metadata, rows = self._compute()
    self._write_side(metadata, rows)
    return {split: self._generate_examples(examples[split])
            for split in SPLITS if examples.get(split)}

  def _generate_examples(self, examples):
    for ex in examples:
      yield ex['song_id'], ex

  def _write_side(self, metadata: dict, rows: list[dict]) -> None:
    """What goes beside the examples: metadata.json's values, the prep report and the
    front-end's side files."""
    self.report_rows = rows
    self.info.metadata.update(metadata)
    write_report(str(self.data_path), rows)
    if self._side_files is not None:
      self._side_files(str(self.data_path), [r['item_id'] for r in rows
                                             if r['status'] == 'written'])


class MerBeamDataset(MerDataset, skip_registration=True):
  """`MerDataset` written by an Apache Beam pipeline (`data_prep.beam_prep`, imported
  by whoever builds one): the same name, so the same folder, files and reader.

  `compute` is (pipeline, folder being written) -> (PCollection of (song id, example)
  per split, (pipeline result) -> (metadata dict, report rows)); the second is called
  once the pipeline ran.
  """

  name = 'mer_dataset'  # Not 'mer_beam_dataset': the local path's folder and files.

  def _split_generators(self, dl_manager, pipeline):  # `pipeline`: TFDS's Beam mode.
    del dl_manager
    examples, self._after_pipeline = self._compute(pipeline, str(self.data_path))
    return examples

  def _process_pipeline_result(self, pipeline_result) -> None:
    self._write_side(*self._after_pipeline(pipeline_result))


def write_report(folder: str, rows: list[dict]) -> None:
  """prep_report.csv (one row per input row; `frames`: a written song's mel frames
  before padding) and prep_report.md (counts)."""
  with open(os.path.join(folder, 'prep_report.csv'), 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=['item_id', 'split', 'status', 'reason', 'note',
                                      'frames'])
    w.writeheader()
    w.writerows(rows)
  lines = ['# Preparation report', '',
           f'{len(rows)} input rows: '
           f'{sum(r["status"] == "written" for r in rows)} written, '
           f'{sum(r["status"] == "skipped" for r in rows)} skipped.', '',
           '| split | written | skipped |', '|---|---:|---:|']
  for split in SPLITS:
    w = sum(r['split'] == split and r['status'] == 'written' for r in rows)
    s = sum(r['split'] == split and r['status'] == 'skipped' for r in rows)
    lines.append(f'| {split} | {w} | {s} |')
  reasons = {}
  for r in rows:
    if r['status'] == 'skipped':
      key = r['reason'].split(':')[0]
      reasons[key] = reasons.get(key, 0) + 1
  if reasons:
    lines += ['', '| skip reason | songs |', '|---|---:|']
    lines += [f'| {k} | {v} |' for k, v in sorted(reasons.items())]
  noted = [r for r in rows if r.get('note')]
  if noted:
    lines += ['', f'{len(noted)} written song(s) have an official quadrant that differs '
              'from the one of their valence/arousal at the 0.5 thresholds (kept; see the '
              'note column of prep_report.csv; config.eval.quadrant_source picks which '
              'the quadrant metrics use):', '']
    lines += [f'- {r["item_id"]} ({r["split"]}): {r["note"]}' for r in noted[:50]]
    if len(noted) > 50:
      lines.append(f'- ... and {len(noted) - 50} more')
  with open(os.path.join(folder, 'prep_report.md'), 'w') as f:
    f.write('\n'.join(lines) + '\n')

"""Job 'exp3' (Experiment 3): trains what is missing into the workdir, then writes the
congruence analysis (`mer_jax.congruence`) into <workdir>/report/:

  exp1/           the fusion model (skipped with `config.exp3.exp1_workdir`)
  siamese/        the contrastive Siamese model (`config.task = 'siamese'`), its audio
                  tower started from the Exp 1 model's (`config.exp3.siamese_warm_start`)
  siamese_folds/  with `config.exp3.congruence_folds` >= 2: one Siamese model per fold of
                  the training songs, each trained without it (`fold<k>/`), and
                  `congruence_crossfit.csv`: every training song scored by the model
                  that did not train on it, validation and test songs by siamese/
  gated/          the Exp 1 run's config with the lyrics features gated by congruence,
                  trained on the cross-fitted congruence (so the gate does not learn on
                  the inflated congruence of songs the Siamese model fitted)
"""

from __future__ import annotations

import logging
import os

import ml_collections
import pandas as pd

from mer_jax import congruence, run_config, runs
from mer_jax.congruence import read_report
from mer_jax.jobs import JobResult

PREPARES_DATA = True  # Reads config.data: `jobs.run` checks the release is there first.


def siamese_config(config: ml_collections.ConfigDict, exp1_dir: str = ''
                   ) -> ml_collections.ConfigDict:
  """The Siamese run of an Exp 3 config: its towers, data and `config.siamese`, with
  the batch size, learning rate and epochs of `config.exp3`; the audio tower starts
  from the Exp 1 run in `exp1_dir` when `config.exp3.siamese_warm_start`."""
  e = config.exp3
  return runs.derive(config, **{'job': 'train', 'task': 'siamese',
                                'train.batch_size': e.siamese_batch_size,
                                'train.learning_rate': e.siamese_learning_rate,
                                'train.num_epochs': e.siamese_num_epochs,
                                'model.init_audio_from': (exp1_dir if e.siamese_warm_start
                                                          else '')})


def _train(config: ml_collections.ConfigDict, workdir: str, what: str) -> None:
  from mer_jax import train
  if runs.is_finished(workdir):
    logging.info('Exp 3: %s in %s has finished', what, workdir)
    return
  logging.info('Exp 3: training %s into %s', what, workdir)
  train.train_and_evaluate(config, workdir)


def run(config: ml_collections.ConfigDict, workdir: str) -> JobResult:
  """Trains what is missing (re-running resumes) and writes the Exp 3 report."""
  workdir = os.path.abspath(workdir)
  exp1_dir = config.exp3.exp1_workdir or os.path.join(workdir, 'exp1')
  if not config.exp3.exp1_workdir:
    _train(runs.derive(config, job='train', task='fusion'), exp1_dir, 'the fusion model')
  siamese_dir = os.path.join(workdir, 'siamese')
  _train(siamese_config(config, exp1_dir), siamese_dir, 'the Siamese model')
  gated_dir, folds = None, config.exp3.congruence_folds
  if config.exp3.gated:
    fields = {'model.fusion.congruence_gate': True, 'model.congruence_workdir': siamese_dir}
    if folds >= 2:
      fold_dirs = [os.path.join(workdir, 'siamese_folds', f'fold{k}') for k in range(folds)]
      for k, d in enumerate(fold_dirs):
        _train(runs.derive(siamese_config(config, exp1_dir), **{
            'data.folds': folds, 'data.holdout_fold': k}), d,
               f'the Siamese model without fold {k} of {folds}')
      fields['model.congruence_file'] = write_crossfit(
          siamese_dir, fold_dirs, os.path.join(workdir, 'siamese_folds', CROSSFIT_FILE))
    gated_dir = os.path.join(workdir, 'gated')
    _train(runs.derive(run_config.read(exp1_dir)[0], job='train', task='fusion',
                       **fields), gated_dir, 'the congruence-gated fusion')
  out = os.path.join(workdir, 'report')
  s = congruence.analyse(exp1_dir, siamese_dir, gated_dir, out, config.exp3.num_bins)
  return JobResult(s, os.path.join(out, 'exp3.md'), (
      f'test retrieval MRR {s["mrr"]:.3f} (random {s["random_mrr"]:.3f}), matched '
      f'AUC {s["matched_auc"]:.3f}, incongruent AUC '
      f'{s.get("incongruent_auc", float("nan")):.3f}; congruence vs combined '
      f'error: Spearman {s["spearman_rho_combined"]:.3f} '
      f'(p {s["spearman_p_combined"]:.2g})',))


CROSSFIT_FILE = 'congruence_crossfit.csv'


def write_crossfit(siamese_dir: str, fold_dirs: list[str], path: str) -> str:
  """The cross-fitted congruence table (song_id,split,congruence,source) at `path`:
  every training song's congruence from the fold model that held it out, validation
  and test songs from the Siamese model trained on every training song."""
  from mer_jax.input_pipeline import HELDOUT
  full = pd.read_csv(read_report(siamese_dir, 'congruence.csv'), dtype={'song_id': str})
  parts = [full[full.split != 'train'].assign(source='full model')]
  for k, d in enumerate(fold_dirs):
    c = pd.read_csv(read_report(d, 'congruence.csv'), dtype={'song_id': str})
    parts.append(c[c.split == HELDOUT].assign(split='train', source=f'fold {k}'))
  df = pd.concat(parts, ignore_index=True)[['song_id', 'split', 'congruence', 'source']]
  train_ids = set(full.song_id[full.split == 'train'])
  got = df.song_id[df.split == 'train']
  if got.duplicated().any() or set(got) != train_ids:
    raise ValueError(f'the folds in {os.path.dirname(path)} do not hold out every '
                     'training song exactly once: delete that folder and rerun')
  tmp = path + '.tmp'
  df.to_csv(tmp, index=False, float_format='%.6f')
  os.replace(tmp, path)
  return path



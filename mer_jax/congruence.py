"""Experiment 3's analysis: does audio-lyrics congruence go with lower prediction error?

`analyse(exp1_dir, siamese_dir, gated_dir, out_dir)` reads a fusion run (Exp 1), the
Siamese run that gives every song's congruence (cosine of its own audio and lyrics
embeddings) and optionally the congruence-gated fusion run, and writes the report of
the test split into `out_dir` (the job that trains them: `mer_jax.jobs.exp3`):

  exp3_summary.csv        metric,value: retrieval (Recall@1/5/10, median rank, MRR per
                          direction, random expectation), matched_auc, incongruent_auc
                          (labelled data), Pearson/Spearman of congruence vs absolute
                          error with p-values, plain vs gated fusion test metrics, and
                          what the gate trained on (congruence_folds, mean congruences)
  exp3.md                 the same as tables, with the figures
  congruence_bins.csv     mean absolute error per congruence bin (quintiles)
  congruence_hist.png     matched vs mismatched similarities; congruent vs incongruent
  congruence_vs_error.png congruence against absolute error (valence, arousal, combined)
  error_by_congruence.png mean absolute error per congruence bin
  exp3_runs.json          the workdirs of the Exp 1, Siamese and gated runs

The combined error is the Euclidean distance of (valence, arousal) prediction and truth
(0..sqrt 2). Congruence is computed on songs the Siamese model never trained on (test).
"""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mer_jax import metrics, run_config  # noqa: E402
from mer_jax.tasks import siamese  # noqa: E402

ERRORS = ('valence', 'arousal', 'combined')
RUNS_FILE = 'exp3_runs.json'  # The workdirs of the report (for notebooks).
COMPARED = ('r2', 'mae', 'ccc')


def read_report(workdir: str, name: str) -> str:
  path = os.path.join(workdir, 'report', name)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: {workdir} has no finished run '
                            '(train it first)')
  return path


def errors_frame(exp1_dir: str, siamese_dir: str, split: str = 'test') -> pd.DataFrame:
  """One row per song of `split`: congruence, congruent label, the Exp 1 predictions
  and absolute errors (valence, arousal, combined)."""
  cong = pd.read_csv(read_report(siamese_dir, 'congruence.csv'), dtype={'song_id': str})
  preds = pd.read_csv(read_report(exp1_dir, 'predictions.csv'), dtype={'song_id': str})
  cong, preds = cong[cong.split == split], preds[preds.split == split]
  missing = set(cong.song_id) ^ set(preds.song_id)
  if missing:
    raise ValueError(
        f'the {split} songs of {exp1_dir} and {siamese_dir} differ ({len(missing)} '
        f'songs, e.g. {sorted(missing)[:3]}): the two runs must use the same prepared '
        'dataset')
  df = preds.merge(cong[['song_id', 'congruent', 'congruence']], on='song_id')
  for d in ('valence', 'arousal'):
    df[f'{d}_abs_error'] = (df[f'{d}_pred'] - df[f'{d}_true']).abs()
  df['combined_abs_error'] = np.hypot(df.valence_abs_error, df.arousal_abs_error)
  return df


def correlations(df: pd.DataFrame) -> dict[str, float]:
  """Pearson r and Spearman rho (with two-sided p-values) of congruence against each
  absolute error."""
  from scipy import stats
  out = {}
  for e in ERRORS:
    x, y = df.congruence.to_numpy(), df[f'{e}_abs_error'].to_numpy()
    p, s = stats.pearsonr(x, y), stats.spearmanr(x, y)
    out.update({f'pearson_r_{e}': float(p.statistic), f'pearson_p_{e}': float(p.pvalue),
                f'spearman_rho_{e}': float(s.statistic),
                f'spearman_p_{e}': float(s.pvalue)})
  return out


def error_bins(df: pd.DataFrame, num_bins: int) -> pd.DataFrame:
  """Mean absolute errors per congruence bin (equal-count quantile bins, 1 = lowest
  congruence): bin, n, congruence_min, congruence_max, <error>_mae."""
  b = pd.qcut(df.congruence, num_bins, labels=False, duplicates='drop') + 1
  g = df.assign(bin=b).groupby('bin')
  out = pd.DataFrame({'n': g.size(), 'congruence_min': g.congruence.min(),
                      'congruence_max': g.congruence.max()})
  for e in ERRORS:
    out[f'{e}_mae'] = g[f'{e}_abs_error'].mean()
  return out.reset_index()


def fusion_comparison(runs: dict[str, str], split: str = 'test') -> pd.DataFrame:
  """variant,dimension,r2,mae,ccc,... of each run's predictions on `split`."""
  rows = []
  for variant, d in runs.items():
    p = pd.read_csv(read_report(d, 'predictions.csv'))
    p = p[p.split == split]
    for dim in metrics.DIMENSIONS:
      m = metrics.all_metrics(p[f'{dim}_true'].to_numpy(), p[f'{dim}_pred'].to_numpy())
      rows.append({'variant': variant, 'dimension': dim, **m})
  return pd.DataFrame(rows)


def analyse(exp1_dir: str, siamese_dir: str, gated_dir: str | None, out_dir: str,
            num_bins: int = 5) -> dict[str, float]:
  """Writes the Exp 3 report (see the module docstring) for the test split."""
  os.makedirs(out_dir, exist_ok=True)
  df = errors_frame(exp1_dir, siamese_dir)
  with np.load(read_report(siamese_dir, 'embeddings.npz')) as z:
    test = z['split'] == 'test'
    audio, lyrics = z['audio'][test], z['lyrics'][test]
  sim = siamese.similarity({'audio': audio, 'lyrics': lyrics})
  summary = {'n_test': len(df), **metrics.retrieval_metrics(sim)}
  del summary['n']
  summary['matched_auc'] = metrics.matched_auc(sim)
  labelled = df.congruent >= 0
  if labelled.any():
    summary['n_incongruent'] = int((df.congruent == 0).sum())
    summary['incongruent_auc'] = metrics.separation_auc(
        df.congruence[labelled], df.congruent[labelled] == 1)
  summary.update(correlations(df))
  bins = error_bins(df, num_bins)
  runs = {'plain': exp1_dir, **({'gated': gated_dir} if gated_dir else {})}
  comparison = fusion_comparison(runs)
  if gated_dir:
    summary.update(gate_congruence(siamese_dir, gated_dir))
  for r in comparison.itertuples():
    for m in COMPARED:
      summary[f'{r.variant}_{r.dimension}_{m}'] = float(getattr(r, m))

  pd.DataFrame({'metric': list(summary), 'value': list(summary.values())}).to_csv(
      os.path.join(out_dir, 'exp3_summary.csv'), index=False)
  bins.to_csv(os.path.join(out_dir, 'congruence_bins.csv'), index=False,
              float_format='%.6f')
  df.to_csv(os.path.join(out_dir, 'exp3_songs.csv'), index=False, float_format='%.6f')
  _plot_histograms(sim, df, os.path.join(out_dir, 'congruence_hist.png'))
  _plot_scatter(df, summary, os.path.join(out_dir, 'congruence_vs_error.png'))
  _plot_bins(bins, os.path.join(out_dir, 'error_by_congruence.png'))
  with open(os.path.join(out_dir, 'exp3.md'), 'w') as f:
    f.write(_markdown(summary, bins, comparison))
  with open(os.path.join(out_dir, RUNS_FILE), 'w') as f:
    json.dump({'exp1': os.path.abspath(exp1_dir), 'siamese': os.path.abspath(siamese_dir),
               'gated': os.path.abspath(gated_dir) if gated_dir else None}, f, indent=2)
  return summary


def gate_congruence(siamese_dir: str, gated_dir: str) -> dict[str, float]:
  """What the gated fusion trained on: congruence_folds (the cross-fitting folds, 0 =
  the Siamese model's own training songs) and the mean congruence of the training
  songs in-sample and as the gate saw them, beside the test songs'."""
  full = pd.read_csv(read_report(siamese_dir, 'congruence.csv'), dtype={'song_id': str})
  path = run_config.read(gated_dir)[0].model.get('congruence_file', '')
  used = pd.read_csv(path, dtype={'song_id': str}) if path else full
  folds = (used.source[used.source.str.startswith('fold')].nunique()
           if 'source' in used else 0)
  mean = lambda df, split: float(df.congruence[df.split == split].mean())  # noqa: E731
  return {'congruence_folds': int(folds),
          'train_congruence_insample_mean': mean(full, 'train'),
          'train_congruence_gate_mean': mean(used, 'train'),
          'test_congruence_mean': mean(full, 'test')}


def read_runs(workdir: str) -> dict[str, str | None]:
  """The workdirs an Exp 3 report was made from: {'exp1', 'siamese', 'gated'}."""
  path = os.path.join(workdir, 'report', RUNS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{path} not found: run Experiment 3 into {workdir} first')
  try:
    with open(path, encoding='utf-8') as f:
      runs = json.load(f)
    return {k: runs[k] for k in ('exp1', 'siamese', 'gated')}
  except (ValueError, KeyError, TypeError) as e:
    raise ValueError(f'{path}: not a readable Exp 3 runs file ({type(e).__name__}: '
                     f'{e})') from None


def _plot_histograms(sim: np.ndarray, df: pd.DataFrame, path: str) -> None:
  labelled = (df.congruent >= 0).any()
  fig, axes = plt.subplots(1, 2 if labelled else 1, figsize=(11 if labelled else 6, 4),
                           squeeze=False)
  off = ~np.eye(len(sim), dtype=bool)
  bins = np.linspace(-1, 1, 41)
  ax = axes[0, 0]
  ax.hist(sim[off], bins=bins, density=True, alpha=0.6, label='mismatched pairs')
  ax.hist(np.diag(sim), bins=bins, density=True, alpha=0.6, label='matched (own lyrics)')
  ax.set(xlabel='cosine similarity (audio, lyrics)', ylabel='density',
         title='Matched vs mismatched pairs (test)')
  ax.legend()
  if labelled:
    ax = axes[0, 1]
    for value, label in ((1, 'congruent'), (0, 'incongruent')):
      ax.hist(df.congruence[df.congruent == value], bins=bins, alpha=0.6, label=label)
    ax.set(xlabel='congruence', ylabel='songs', title='Labelled congruence (test)')
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_scatter(df: pd.DataFrame, summary: dict, path: str) -> None:
  fig, axes = plt.subplots(1, 3, figsize=(14, 4))
  colors = np.where(df.congruent == 0, 'tab:red', 'tab:blue')
  for ax, e in zip(axes, ERRORS):
    ax.scatter(df.congruence, df[f'{e}_abs_error'], s=14, c=colors, alpha=0.7)
    ax.set(xlabel='congruence (cosine)', ylabel=f'{e} absolute error',
           title=f'{e}: r = {summary[f"pearson_r_{e}"]:.2f} '
                 f'(p = {summary[f"pearson_p_{e}"]:.2g}), '
                 f'ρ = {summary[f"spearman_rho_{e}"]:.2f}')
  if (df.congruent == 0).any():
    axes[0].scatter([], [], c='tab:red', label='incongruent (label)')
    axes[0].scatter([], [], c='tab:blue', label='congruent / unknown')
    axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_bins(bins: pd.DataFrame, path: str) -> None:
  fig, ax = plt.subplots(figsize=(7, 4))
  width = 0.8 / len(ERRORS)
  for i, e in enumerate(ERRORS):
    ax.bar(bins['bin'] + (i - 1) * width, bins[f'{e}_mae'], width, label=e)
  ax.set(xlabel='congruence bin (1 = lowest)', ylabel='mean absolute error',
         title='Exp 1 model error by congruence bin (test)')
  ax.set_xticks(bins['bin'])
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _markdown(s: dict, bins: pd.DataFrame, comparison: pd.DataFrame) -> str:
  lines = ['# Experiment 3: audio-lyrics congruence and prediction error', '',
           f'Test split, {s["n_test"]} songs. Congruence = cosine of a song\'s own audio '
           'and lyrics embeddings in the Siamese model\'s shared space (-1..1).', '',
           '## Cross-modal retrieval', '',
           '| | Recall@1 | Recall@5 | Recall@10 | median rank | MRR |',
           '|---|---:|---:|---:|---:|---:|']
  for name, label in (('a2l', 'audio → lyrics'), ('l2a', 'lyrics → audio'),
                      ('random', 'random')):
    cells = [f'{s[f"{name}_{k}"]:.1f}' if k == 'median_rank' else f'{s[f"{name}_{k}"]:.3f}'
             for k in siamese.RETRIEVAL_ROWS]
    lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
  lines += ['', f'Matched vs mismatched pair similarity, AUC: **{s["matched_auc"]:.3f}** '
            '(random 0.5).']
  if 'incongruent_auc' in s:
    lines.append(f'Congruent vs incongruent songs ({s["n_incongruent"]} incongruent by '
                 f'label) separated by congruence, AUC: **{s["incongruent_auc"]:.3f}**.')
  lines += ['', '![similarities](congruence_hist.png)', '',
            '## Congruence vs the Exp 1 model\'s absolute error', '',
            '| error | Pearson r | p | Spearman ρ | p |', '|---|---:|---:|---:|---:|']
  for e in ERRORS:
    lines.append(f'| {e} | {s[f"pearson_r_{e}"]:.3f} | {s[f"pearson_p_{e}"]:.3g} | '
                 f'{s[f"spearman_rho_{e}"]:.3f} | {s[f"spearman_p_{e}"]:.3g} |')
  lines += ['', 'A negative correlation means more congruent songs are predicted better.',
            '', '![scatter](congruence_vs_error.png)', '',
            '### Mean absolute error by congruence bin', '',
            '| bin | songs | congruence | ' + ' | '.join(f'{e} MAE' for e in ERRORS) + ' |',
            '|---:|---:|---|' + '---:|' * len(ERRORS)]
  for b in bins.itertuples():
    lines.append(f'| {b.bin} | {b.n} | {b.congruence_min:.2f} .. {b.congruence_max:.2f} | '
                 + ' | '.join(f'{getattr(b, f"{e}_mae"):.4f}' for e in ERRORS) + ' |')
  lines += ['', '![bins](error_by_congruence.png)', '',
            '## Plain vs congruence-gated fusion (test)', '']
  if 'congruence_folds' in s:
    k = s['congruence_folds']
    lines += [(f'The gate trained on **cross-fitted** congruence: {k} Siamese models, '
               'each training song\'s congruence from the one that did not train on it; '
               'validation and test songs from the model trained on every training song.'
               if k else 'The gate trained on **in-sample** congruence: the Siamese '
               'model\'s own training songs (inflated against unseen songs; set '
               'config.exp3.congruence_folds >= 2 to cross-fit).'),
              f'Mean congruence of the training songs: {s["train_congruence_insample_mean"]:.3f} '
              f'in-sample, {s["train_congruence_gate_mean"]:.3f} as the gate saw them; '
              f'test songs: {s["test_congruence_mean"]:.3f}.', '']
  lines += ['| variant | dimension | R² ↑ | MAE ↓ | CCC ↑ |', '|---|---|---:|---:|---:|']
  for r in comparison.itertuples():
    lines.append(f'| {r.variant} | {r.dimension} | {r.r2:.3f} | {r.mae:.4f} | '
                 f'{r.ccc:.3f} |')
  return '\n'.join(lines) + '\n'

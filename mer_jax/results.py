"""Experiment report: the tables and figures of a results chapter, from finished runs.

Written to `<workdir>/report/`:
  results.csv         model,dimension,metric,mean,std,ci_low,ci_high,n_seeds,frontend
                      (test split; MSE, RMSE, MAE, R², Pearson r, CCC; mean and std over
                      seeds, 95 % bootstrap CI over songs of the seed-mean; the audio
                      front-end of the row's runs)
  results.md          model rows x dimension sub-rows x metric columns (arrows give the
                      better direction), each row's audio front-end, the baselines, the
                      quadrant view, the published results on the same dataset
                      (`mer_jax.published`, with whether the split is the same), missing runs
  quadrant.csv        model,accuracy_mean,accuracy_std,macro_f1_mean,macro_f1_std,n_seeds
                      (true quadrant per `config.eval.quadrant_source`)
  quadrant_confusion.csv  model,true,predicted,count (summed over seeds)
  quadrant_skill.csv  model,dimension,metric,mean,std,n_seeds: test skill vs the
                      quadrant-centre baseline and within-quadrant R² (also in
                      results.md, with whether the best model beats that baseline)
  baselines.csv/.md   random, mean, quadrant-centre (`mer_jax.baselines`), on the same
                      prepared songs as the runs
  va_distribution.png, pred_vs_true.png, learning_curves.png, error_by_quadrant.png
  uncertainty.csv, ensemble_predictions.csv, calibration_<row>.png
                      when a row's runs have a gaussian head (`mer_jax.ensemble`:
                      uncertainty metrics per seed and of each row's deep ensemble)
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mer_jax import baselines, frontends, metrics, published, report, run_config  # noqa: E402

_ARROW = {m: '↑' if up else '↓' for m, up in metrics.HIGHER_IS_BETTER.items()}
_NAMES = {'mse': 'MSE', 'rmse': 'RMSE', 'mae': 'MAE', 'r2': 'R²', 'pearson': 'r',
          'ccc': 'CCC'}


def _test_predictions(runs: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
  """(true labels and quadrant per test song, predictions [runs, songs, 2]) of the runs
  in the workdirs `runs`, aligned by id."""
  frames = [pd.read_csv(os.path.join(r, 'report', 'predictions.csv'),
                        dtype={'song_id': str}) for r in runs]
  frames = [f[f.split == 'test'].set_index('song_id').sort_index() for f in frames]
  base = frames[0]
  for f, r in zip(frames[1:], runs[1:]):
    if not f.index.equals(base.index):
      raise ValueError(f'{r}: its test songs differ from {runs[0]}\'s')
  preds = np.stack([f[['valence_pred', 'arousal_pred']].to_numpy() for f in frames])
  return base, preds


def true_quadrants(truth: pd.DataFrame, source: str) -> np.ndarray:
  """[songs] true quadrant 0..3 of a predictions frame under `source`
  (`config.eval.quadrant_source`); runs saved before the official column count as
  having none."""
  names = {q: i for i, q in enumerate(report.QUADRANT_NAMES)}
  official = (truth.official_quadrant.map(names).to_numpy(np.float64)
              if 'official_quadrant' in truth else None)
  return metrics.true_quadrants(truth.quadrant.map(names).to_numpy(), official, source)


def frontend_of(runs: list[str]) -> str:
  """The audio front-end of a row's runs (their saved configs), in words; 'unknown'
  for runs without one (their predictions copied elsewhere)."""
  names = {frontends.get(run_config.read(r)[0]).description
           if os.path.isfile(os.path.join(r, 'config.json')) else 'unknown (no config.json)'
           for r in runs}
  return ' / '.join(sorted(names))


def results_table(groups: dict[str, list[str]], n_bootstrap: int,
                  quadrant_source: str = 'official'
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
  rows, quads, confusion = [], [], []
  for label, rs in groups.items():
    truth, preds = _test_predictions(rs)
    frontend = frontend_of(rs)
    for i, d in enumerate(metrics.DIMENSIONS):
      y = truth[f'{d}_true'].to_numpy()
      per_seed = [metrics.all_metrics(y, p[:, i]) for p in preds]
      for m in metrics.FULL_METRICS:
        vals = np.array([s[m] for s in per_seed])
        low, high = metrics.bootstrap_ci(y, preds[:, :, i], m, n_resamples=n_bootstrap)
        rows.append({'model': label, 'dimension': d, 'metric': m, 'mean': vals.mean(),
                     'std': vals.std(ddof=1) if len(vals) > 1 else 0.0,
                     'ci_low': low, 'ci_high': high, 'n_seeds': len(vals),
                     'frontend': frontend})
    tq = true_quadrants(truth, quadrant_source)
    q = [metrics.quadrant_metrics(tq, p[:, 0], p[:, 1]) for p in preds]
    acc, f1 = np.array([x['accuracy'] for x in q]), np.array([x['macro_f1'] for x in q])
    sd = (lambda v: v.std(ddof=1) if len(v) > 1 else 0.0)  # noqa: E731
    quads.append({'model': label, 'accuracy_mean': acc.mean(), 'accuracy_std': sd(acc),
                  'macro_f1_mean': f1.mean(), 'macro_f1_std': sd(f1), 'n_seeds': len(q)})
    conf = sum(x['confusion'] for x in q)  # Summed over seeds.
    confusion += [{'model': label, 'true': report.QUADRANT_NAMES[i],
                   'predicted': report.QUADRANT_NAMES[j], 'count': int(conf[i, j])}
                  for i in range(4) for j in range(4)]
  cols = ['model', 'dimension', 'metric', 'mean', 'std', 'ci_low', 'ci_high', 'n_seeds',
          'frontend']
  return pd.DataFrame(rows, columns=cols), pd.DataFrame(quads), pd.DataFrame(confusion)


def skill_table(groups: dict[str, list[str]]) -> pd.DataFrame:
  """model,dimension,metric,mean,std,n_seeds of the test skill beyond the quadrant
  (`report.skill_table` of each run, true quadrant official where released)."""
  rows = []
  for label, rs in groups.items():
    per_run = []
    for r in rs:
      df = pd.read_csv(os.path.join(r, 'report', 'predictions.csv'),
                       dtype={'song_id': str}, keep_default_na=False,
                       na_values={c: [''] for c in ('valence_true', 'valence_pred',
                                                    'arousal_true', 'arousal_pred')})
      t = report.skill_table(df)
      per_run.append(t[t.split == 'test'])
    if not all(len(t) for t in per_run):
      continue  # A run without train or test predictions: no centres or no score.
    for d in metrics.DIMENSIONS:
      for m in metrics.SKILL_METRICS:
        vals = np.array([t[(t.dimension == d) & (t.metric == m)].value.iloc[0]
                         for t in per_run])
        rows.append({'model': label, 'dimension': d, 'metric': m, 'mean': vals.mean(),
                     'std': vals.std(ddof=1) if len(vals) > 1 else 0.0,
                     'n_seeds': len(vals)})
  return pd.DataFrame(rows, columns=['model', 'dimension', 'metric', 'mean', 'std',
                                     'n_seeds'])


def skill_lines(skill: pd.DataFrame) -> list[str]:
  """The results' section on the skill beyond the quadrant, with its one-sentence
  verdict on the best model (highest mean skill over both dimensions)."""
  if not len(skill):
    return []
  lines = ['', '## Skill beyond the quadrant', '',
           'Test split, mean ± std over seeds. Skill = 1 - MSE / MSE of the '
           'quadrant-centre baseline (negative: the model knows less than the quadrant '
           'alone); within-quadrant R² = R² after subtracting each true quadrant\'s '
           'training mean from labels and predictions.', '',
           '| Model | Dimension | skill ↑ | within-quadrant R² ↑ |', '|---|---|---:|---:|']
  for (model, d), g in skill.groupby(['model', 'dimension'], sort=False):
    v = g.set_index('metric')
    cells = [f'{v.loc[m, "mean"]:.3f} ± {v.loc[m, "std"]:.3f}' for m in metrics.SKILL_METRICS]
    lines.append(f'| {model} | {d} | ' + ' | '.join(cells) + ' |')
  s = skill[skill.metric == 'skill_vs_quadrant']
  best = s.groupby('model', sort=False)['mean'].mean().idxmax()
  b = s[s.model == best].set_index('dimension')['mean']
  beats = [d for d in metrics.DIMENSIONS if b[d] > 0]
  verdict = ('beats the quadrant-centre baseline in both dimensions' if len(beats) == 2
             else f'beats the quadrant-centre baseline in {beats[0]} only' if beats
             else 'does not beat the quadrant-centre baseline in either dimension')
  lines += ['', f'The best model by skill, {best} (valence {b["valence"]:.3f}, arousal '
            f'{b["arousal"]:.3f}), {verdict}.']
  return lines


def _markdown(table: pd.DataFrame, quads: pd.DataFrame, confusion: pd.DataFrame,
              base: baselines.Baselines | None, missing: list[str], test_ids: list[str],
              quadrant_source: str, skill: pd.DataFrame | None = None,
              published_lines: list[str] = ()) -> str:
  n_test = len(test_ids)
  lines = ['# Results', '',
           f'Test split ({n_test} songs), valence and arousal on 0..1. Each cell: mean ± '
           'std over seeds [95 % bootstrap CI over songs]. Arrows give the better direction.',
           '', '| Model | Dimension | ' + ' | '.join(
               f'{_NAMES[m]} {_ARROW[m]}' for m in metrics.FULL_METRICS) + ' |',
           '|---|---|' + '---:|' * len(metrics.FULL_METRICS)]
  for model, g in table.groupby('model', sort=False):
    for j, d in enumerate(metrics.DIMENSIONS):
      cells = []
      for m in metrics.FULL_METRICS:
        r = g[(g.dimension == d) & (g.metric == m)].iloc[0]
        cells.append(f'{r["mean"]:.3f} ± {r["std"]:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]')
      n = int(g.n_seeds.iloc[0])
      lines.append(f'| {model if j == 0 else ""}{f" (n={n})" if j == 0 else ""} | {d} | '
                   + ' | '.join(cells) + ' |')
  lines += list(published_lines)
  lines += ['', '| Model | Audio front-end |', '|---|---|']
  lines += [f'| {model} | {g.frontend.iloc[0]} |'
            for model, g in table.groupby('model', sort=False)]
  if base is not None:
    lines += ['', '## Baselines', '', base.songs_line()]
    if sorted(base.test_ids) != sorted(test_ids):
      lines += ['', f'**Warning**: the baselines\' {base.n_test} test songs are not the '
                f'runs\' {n_test} (the prepared data changed since the runs finished).']
    lines += ['', '| Baseline | Dimension | MSE ↓ | RMSE ↓ | MAE ↓ | R² ↑ |',
              '|---|---|---:|---:|---:|---:|']
    for r in base.table.itertuples():
      lines.append(f'| {r.baseline} | {r.dimension} | {r.mse:.3f} | {r.rmse:.3f} | '
                   f'{r.mae:.3f} | {r.r2:.3f} |')
  lines += skill_lines(skill if skill is not None else pd.DataFrame())
  lines += ['', '## Quadrants (predictions thresholded at 0.5)', '',
            f'True quadrant ({quadrant_source}): '
            f'{metrics.QUADRANT_SOURCE_TEXT[quadrant_source]}.', '',
            '| Model | Accuracy ↑ | Macro-F1 ↑ |', '|---|---:|---:|']
  for r in quads.itertuples():
    lines.append(f'| {r.model} | {r.accuracy_mean:.3f} ± {r.accuracy_std:.3f} | '
                 f'{r.macro_f1_mean:.3f} ± {r.macro_f1_std:.3f} |')
  lines += ['', 'Confusion matrices (rows: true quadrant, columns: predicted; summed over '
            'seeds):', '']
  for model, g in confusion.groupby('model', sort=False):
    m = g.pivot(index='true', columns='predicted', values='count')
    lines += [f'**{model}**', '', '| true \\ predicted | ' + ' | '.join(
        report.QUADRANT_NAMES) + ' |', '|---|' + '---:|' * 4]
    lines += [f'| {q} | ' + ' | '.join(str(int(m.loc[q, p])) for p in report.QUADRANT_NAMES)
              + ' |' for q in report.QUADRANT_NAMES]
    lines.append('')
  lines += ['## Runs', '']
  lines.append('All runs finished.' if not missing else
               f'{len(missing)} run(s) missing (not finished): '
               + ', '.join(missing))
  lines += ['', 'Figures: `va_distribution.png`, `pred_vs_true.png`, '
            '`learning_curves.png`, `error_by_quadrant.png`.']
  return '\n'.join(lines) + '\n'


def _plot_pred_vs_true(groups, path, source):
  fig, axes = plt.subplots(len(groups), 2, figsize=(8, 3.8 * len(groups)), squeeze=False)
  for row, (label, rs) in zip(axes, groups.items()):
    truth, preds = _test_predictions(rs)
    tq = true_quadrants(truth, source)
    mean = preds.mean(axis=0)
    for ax, i, d in zip(row, range(2), metrics.DIMENSIONS):
      for k, (q, c) in enumerate(zip(report.QUADRANT_NAMES, report.QUADRANT_COLORS)):
        sel = tq == k
        ax.scatter(truth[f'{d}_true'][sel], mean[sel, i], s=12, c=c, label=q, alpha=0.8)
      ax.plot([0, 1], [0, 1], 'k--', lw=1)
      ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f'true {d}', ylabel=f'predicted {d}',
             title=f'{label}: {d} (mean of {len(rs)} seeds)', aspect='equal')
    row[0].legend(title='true quadrant', fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def _plot_curves(groups, path):
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for k, (label, rs) in enumerate(groups.items()):
    for j, r in enumerate(rs):
      h = pd.read_csv(os.path.join(r, 'report', 'history.csv'))
      ax.plot(h.epoch, h.val_loss, color=f'C{k}', lw=1.2, label=label if j == 0 else None)
      ax.plot(h.epoch, h.train_loss, color=f'C{k}', lw=0.8, ls=':')
  ax.set(xlabel='epoch', ylabel='MSE', yscale='log',
         title='validation (solid) and training (dotted) loss, every seed')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _plot_error_by_quadrant(groups, path, source):
  fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
  width = 0.8 / max(len(groups), 1)
  for k, (label, rs) in enumerate(groups.items()):
    truth, preds = _test_predictions(rs)
    tq = true_quadrants(truth, source)
    for ax, i, d in zip(axes, range(2), metrics.DIMENSIONS):
      err = np.abs(preds[:, :, i] - truth[f'{d}_true'].to_numpy()).mean(axis=0)
      vals = [err[tq == q].mean() if (tq == q).any() else np.nan for q in range(4)]
      ax.bar(np.arange(4) + k * width, vals, width, label=label, color=f'C{k}')
      ax.set(xticks=np.arange(4) + 0.4 - width / 2, xticklabels=report.QUADRANT_NAMES,
             title=f'{d}: mean absolute error by true quadrant', xlabel='true quadrant')
  axes[0].set_ylabel('MAE (0..1 scale)')
  axes[1].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def summarize(config: ml_collections.ConfigDict, folder: str,
              groups: dict[str, list[str]], missing: list[str]) -> str:
  """Writes the experiment report into `folder` from the finished runs (`groups`: table
  row -> the workdirs of its seeds) and the baselines; `missing` names the runs still
  to finish. Returns the path of results.md."""
  os.makedirs(folder, exist_ok=True)
  base, source = None, config.eval.quadrant_source
  try:
    base = baselines.compute(config)
    baselines.write(base, folder)
  except (ValueError, FileNotFoundError) as e:
    print(f'baselines not computed: {e}')
  path = os.path.join(folder, 'results.md')
  if not groups:
    with open(path, 'w') as f:
      f.write('# Results\n\nNo run has finished yet; missing: ' + ', '.join(missing) + '\n')
    return path
  table, quads, confusion = results_table(groups, config.sweep.n_bootstrap, source)
  table.to_csv(os.path.join(folder, 'results.csv'), index=False, float_format='%.8g')
  quads.to_csv(os.path.join(folder, 'quadrant.csv'), index=False, float_format='%.8g')
  confusion.to_csv(os.path.join(folder, 'quadrant_confusion.csv'), index=False)
  skill = skill_table(groups)
  skill.to_csv(os.path.join(folder, 'quadrant_skill.csv'), index=False, float_format='%.8g')
  first = next(iter(groups.values()))[0]
  truth, _ = _test_predictions([first])
  from mer_jax import ensemble  # Rows of gaussian heads: uncertainty and ensembles.
  extra = ensemble.write(folder, groups) if ensemble.has_sigma(groups) else ''
  with open(path, 'w') as f:
    f.write(_markdown(table, quads, confusion, base, missing, list(truth.index), source,
                      skill, published.lines(config, table, quads,
                                             n_test=len(truth))))
    if extra:
      f.write('\n' + extra)
  all_preds = pd.read_csv(os.path.join(first, 'report', 'predictions.csv'),
                          dtype={'song_id': str})
  report.plot_distribution(all_preds, os.path.join(folder, 'va_distribution.png'))
  _plot_pred_vs_true(groups, os.path.join(folder, 'pred_vs_true.png'), source)
  _plot_curves(groups, os.path.join(folder, 'learning_curves.png'))
  _plot_error_by_quadrant(groups, os.path.join(folder, 'error_by_quadrant.png'), source)
  return path

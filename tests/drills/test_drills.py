"""The reliability drills: every audio, lyrics and manifest input of
tests/drills/inputs.py through prepare, one training step and prediction (one song, a
folder); config values and workdir/output mistakes; SIGKILL at three random points each
of prepare, training and folder prediction (tests/drills/kill.py). Each row must be a
clear error, a listed skip or accepted as EXPECTED says, or a kill after which nothing
half-written passes for finished output and the rerun equals an uninterrupted run; with
nothing lost and no traceback. One file: pytest-xdist keeps a file on one worker, so
drills.md gets every row."""

import io
import json
import math
import os
import shutil
import sys

import numpy as np
import pandas as pd

from mer_jax import runs
from tests.drills import inputs, kill, table
from tests.drills import world as w
from tests.drills.table import ACCEPTED, CLEAR, SKIP, Row


def _prepared_ids(builder):
  from mer_jax import input_pipeline
  return {s.decode() for split in input_pipeline.split_names(builder)
          for s in input_pipeline.read_split(builder, split, ('song_id',))['song_id']}


def test_prepare_takes_every_input(world, prepared):
  from mer_jax import input_pipeline, tokenization
  assert prepared.outcome == ACCEPTED, prepared.detail
  builder = prepared.value
  report = pd.read_csv(os.path.join(builder.data_dir, 'prep_report.csv'), dtype=str,
                       keep_default_na=False).set_index('item_id')
  examples = {}
  for split in input_pipeline.split_names(builder):
    cols = input_pipeline.read_split(builder, split, ('song_id', 'token_ids'))
    examples.update(zip((s.decode() for s in cols['song_id']), cols['token_ids']))
  rows = []
  for i, inp in enumerate(world.audio + world.lyrics):
    sid = w.row_id(i)
    st = report.loc[sid] if sid in report.index else None
    written = st is not None and st.status == 'written'
    lost = int(st is None or written != (sid in examples))
    rows.append(Row(inp.name, 'data_prep.prepare', ACCEPTED if written else SKIP,
                    'written' if written else (st.reason if st is not None else ''), lost))
  n_in = len(world.audio) + len(world.lyrics) + len(world.songs)
  assert len(report) == n_in and len(examples) == (report.status == 'written').sum()
  w.add(world, rows)
  w.check_expected(rows)
  # The byte-order mark is dropped: the lyrics tokenize as the text without it.
  bom = next(i for i, r in enumerate(rows) if r.input == 'lyrics: UTF-8 with BOM')
  tok = tokenization.load_tokenizer(world.config.text.encoder)
  ids, _ = tokenization.tokenize(['happy sunny day\nwe dance\n'], tok,
                                 world.config.text.max_length)
  np.testing.assert_array_equal(examples[w.row_id(bom)], ids[0])


def test_manifests(world):
  from data_prep import prepare
  songs = inputs.good_songs(os.path.join(world.root, 'good'), 6, world.good)
  want = {'empty file': (CLEAR, 'empty file (0 bytes)'),
          'header only': (CLEAR, 'manifest has no rows'),
          'missing column': (CLEAR, 'missing column(s) arousal'),
          'extra column': (ACCEPTED, ''), 'byte-order mark': (ACCEPTED, ''),
          'CRLF line ends': (ACCEPTED, ''), 'quoted commas': (ACCEPTED, ''),
          'duplicate id': (CLEAR, "song_id 'good00' already used on row 2"),
          'NaN label': (CLEAR, "row 8: valence is 'nan', not a number in 0..1"),
          'labels outside 0..1': (CLEAR, 'row 8: valence 1.7 is outside 0..1'),
          'unknown split': (CLEAR, "split 'holdout' is not one of")}
  rows = []
  for k, (name, path, n_in) in enumerate(inputs.manifest_inputs(
      os.path.join(world.root, 'manifests'), songs)):
    data_dir = os.path.join(world.root, f'prepared_m{k:02d}')
    c = table.call(lambda: prepare.prepare(w.config_for(world.root, path, data_dir)))
    lost, detail = 0, c.detail
    if c.outcome == ACCEPTED:
      meta = c.value.info.metadata
      lost = n_in - meta['num_written'] - meta['num_skipped']
      detail = f'{n_in} rows: {meta["num_written"]} written, {meta["num_skipped"]} skipped'
    elif os.path.isdir(data_dir):  # A refused manifest leaves nothing behind.
      lost = sum(len(f) for _, _, f in os.walk(data_dir))
    rows.append(Row(f'manifest: {name}', 'data_prep.prepare', c.outcome, detail, lost,
                    c.traceback))
  w.add(world, rows)
  for r, (name, (outcome, text)) in zip(rows, want.items()):
    assert r.outcome == outcome and text in r.detail, (name, r)


def test_train_one_step_and_config_values(world, prepared, trained):
  from mer_jax import jobs
  c, config, workdir = trained
  report = os.path.join(workdir, 'report')
  rows = []
  if c.outcome == ACCEPTED:
    hist = pd.read_csv(os.path.join(report, 'history.csv'))
    preds = pd.read_csv(os.path.join(report, 'predictions.csv'), dtype={'song_id': str})
    ids = _prepared_ids(prepared.value)
    finite = np.isfinite(preds[['valence_pred', 'arousal_pred']].to_numpy()).all()
    assert len(hist) == 1 and math.isfinite(hist.train_loss[0]) and finite
    rows.append(Row(f'the prepared table ({len(ids)} songs)', 'launch.py (1 step)',
                    ACCEPTED, f'{config.train.batch_size} training songs in 1 step, loss '
                    f'{hist.train_loss[0]:.4f}; {len(preds)} finite predictions',
                    len(ids ^ set(preds.song_id))))
  else:
    rows.append(Row('the prepared table', 'launch.py (1 step)', c.outcome, c.detail, 1,
                    c.traceback))
  # Values that cannot work fail before any data is prepared (a fresh data_dir stays
  # absent) or, for flags, while the command line is parsed.
  n_index = int((pd.read_csv(world.config.data.manifest).split == 'train').sum())
  for k, (name, fields, text) in enumerate([
      ('num_epochs 0', {'train.num_epochs': 0}, 'config.train.num_epochs = 0: must be'),
      ('batch larger than the data', {'train.batch_size': 4096},
       f'table.csv: lists {n_index} training songs, fewer than the batch size '
       '(config.train.batch_size = 4096)')]):
    fresh = os.path.join(world.root, f'fresh_{k}')
    cfg = runs.derive(world.config, **{'data.data_dir': fresh, **fields})
    got = table.call(lambda: jobs.run(cfg, os.path.join(world.root, f'config_{k}')))
    rows.append(Row(f'config: {name}', 'launch.py', got.outcome, got.detail,
                    int(os.path.exists(fresh)), got.traceback))
    assert got.outcome == CLEAR and text in got.detail, got
  for name, flag, text in [
      ('unknown field', '--config.train.learnig_rate=0.1',
       'no config field \'learnig_rate\'; Did you mean "learning_rate"'),
      ('wrong type', '--config.train.num_epochs=two', 'invalid literal for int()')]:
    got = table.command([sys.executable, 'launch.py', '--config=configs/tiny.py',
                         f'--workdir={world.root}/typo', flag], w.REPO)
    rows.append(Row(f'config: {name} ({flag})', 'launch.py', got.outcome, got.detail, 0,
                    got.traceback))
    assert got.outcome == CLEAR and text in got.detail, got
  w.add(world, rows)


def _no_nan(text):
  def refuse(c):
    raise ValueError(f'{c} in the output')
  return json.loads(text, parse_constant=refuse)


def test_predict_one_song(world, trained, loaded_once):
  rows = []
  for inp in world.audio + world.lyrics:
    c = w.predict(trained[2], f'--audio={inp.audio}',
                  f'--lyrics={inp.lyrics or world.good}', '--json')
    detail = c.detail
    if c.outcome == ACCEPTED:
      res = _no_nan(c.stdout)  # Valid JSON, no NaN.
      assert 0 <= res['valence'] <= 1 and 0 <= res['arousal'] <= 1, res
      detail = f'valence {res["valence"]:.3f}, arousal {res["arousal"]:.3f}'
    rows.append(Row(inp.name, 'mer_jax.predict --audio=... --json', c.outcome, detail,
                    0, c.traceback))
  w.add(world, rows)
  w.check_expected(rows)


def test_predict_folders(world, trained, loaded_once):
  rows = []
  lyrics_dir = os.path.join(world.root, 'audio_lyrics')
  os.makedirs(lyrics_dir)
  for inp in world.audio:
    stem = os.path.splitext(os.path.basename(inp.audio))[0]
    shutil.copy(world.good, os.path.join(lyrics_dir, stem + '.txt'))
  for group, folder, lyr in [(world.audio, os.path.join(world.root, 'audio'), lyrics_dir),
                             (world.lyrics, os.path.join(world.root, 'lyrics'), None)]:
    out = os.path.join(world.root, f'folder_{len(rows)}.csv')
    c = w.predict(trained[2], f'--audio_dir={folder}', f'--lyrics_dir={lyr or folder}',
                  f'--out={out}')
    assert c.outcome == ACCEPTED, c.detail
    preds = pd.read_csv(out, dtype={'song_id': str}, keep_default_na=False)
    errors = pd.read_csv(out.replace('.csv', '_errors.csv'), dtype={'song_id': str},
                         keep_default_na=False).set_index('song_id')
    assert np.isfinite(preds[['valence', 'arousal']].to_numpy(float)).all()
    for inp in group:
      stem = os.path.splitext(os.path.basename(inp.audio))[0]
      done, failed = stem in set(preds.song_id), stem in errors.index
      rows.append(Row(inp.name, 'mer_jax.predict --audio_dir=...',
                      ACCEPTED if done else SKIP,
                      'predicted' if done else (errors.reason[stem] if failed else ''),
                      int(done == failed)))
  w.add(world, rows)
  w.check_expected(rows)


def test_workdirs_and_outputs(world, trained):
  from mer_jax import jobs
  _, config, run = trained
  rows = []

  def check(name, entry, c, text, leftover=None):
    lost = int(bool(leftover and os.path.exists(leftover)))
    rows.append(Row(name, entry, c.outcome, c.detail, lost, c.traceback))
    assert c.outcome == CLEAR and text in c.detail, (name, c)

  a_file = os.path.join(world.root, 'a_file')
  open(a_file, 'w').close()
  check('workdir: a file', 'launch.py', table.call(lambda: jobs.run(config, a_file)),
        'a_file: is a file, not a folder (the workdir)')
  check('workdir: under a file', 'launch.py',
        table.call(lambda: jobs.run(config, os.path.join(a_file, 'run'))),
        'lies under ' + a_file)
  ro = os.path.join(world.root, 'read_only')
  os.makedirs(ro)
  songs_dir = os.path.dirname(world.songs[0][1])
  jobs_run = lambda wd: lambda: table.call(lambda: jobs.run(config, wd))  # noqa: E731
  for name, folder, runner, entry, text, leftover in [
      ('workdir: read-only', ro, jobs_run(ro), 'launch.py',
       'read_only: cannot write in this folder (the workdir)', None),
      ('workdir: a finished run, read-only', run, jobs_run(run), 'launch.py',
       'run: cannot write in this folder (the workdir)', None),
      ('--out in a read-only folder', ro,
       lambda: w.predict(run, f'--audio_dir={songs_dir}', f'--out={ro}/preds.csv'),
       'mer_jax.predict', 'read_only: cannot write in this folder (the folder of --out)',
       f'{ro}/preds.csv')]:
    with table.read_only(folder) as effective:
      if not effective:  # Root on a filesystem without chattr: nothing to drill.
        world.notes.append(f'{name}: not drilled, writes succeed for this user here.')
        continue
      check(name, entry, runner(), text, leftover)
  out_dir = os.path.join(world.root, 'out_folder.csv')
  os.makedirs(out_dir)
  for name, out, text in [('--out a folder', out_dir, 'is a folder, not a file (--out)'),
                          ('--out under a file', os.path.join(a_file, 'p.csv'),
                           'lies under ' + a_file)]:
    check(name, 'mer_jax.predict',
          w.predict(run, f'--audio_dir={songs_dir}', f'--out={out}'), text)
  assert runs.is_finished(run)  # The read-only rerun changed nothing.
  w.add(world, rows)


# Kill drills -------------------------------------------------------------------

def test_kill_prepare(world):
  songs = inputs.good_songs(os.path.join(world.root, 'kill_songs'), 30, world.good)
  manifest = os.path.join(world.root, 'kill.csv')
  with open(manifest, 'w') as f:
    f.write('\n'.join([inputs.HEADER, *inputs._rows(songs)]) + '\n')
  ref_dir, dd = (os.path.join(world.root, d) for d in ('kill_ref', 'kill_prepared'))
  cmd = lambda d: [sys.executable, '-m', 'data_prep.prepare', '--config=configs/tiny.py',  # noqa: E731
                   '--config.data.source=manifest', f'--config.data.manifest={manifest}',
                   '--config.data.name=kill', f'--config.data.data_dir={d}']
  done = lambda d: any(os.path.basename(v) == '1.0.0' for v in kill.versions(d))  # noqa: E731
  names = lambda d: sorted(f for v in kill.versions(d) if v.endswith('1.0.0')  # noqa: E731
                           for f in os.listdir(v))
  total, (t_feat, t_write, t_done) = kill.timed(
      cmd(ref_dir), w.REPO, {}, [lambda: kill.has(ref_dir, 'incomplete.'),
                                 lambda: kill.has(ref_dir, 'incomplete.', 'tfrecord'),
                                 lambda: done(ref_dir)])
  extract = kill.Point('preparing, extracting features', lambda: kill.has(dd, 'incomplete.'),
                       0.9)
  write = kill.Point('preparing, writing TFRecords', lambda: kill.has(dd, 'incomplete.',
                                                                 'tfrecord'), 0.9,
                     over=lambda: done(dd) and names(dd) == names(ref_dir))

  def compare():
    assert not [v for v in kill.versions(dd) if 'incomplete.' in v]  # Cleaned up.
    (ref,), (got,) = [v for v in kill.versions(ref_dir)], [v for v in kill.versions(dd)]
    files = sorted(f for f in os.listdir(ref) if f.startswith(('prep_report', 'metadata')))
    differ = sum(open(os.path.join(ref, f), 'rb').read() !=
                 open(os.path.join(got, f), 'rb').read() for f in files)
    n = 0
    for f in sorted(f for f in os.listdir(ref) if 'tfrecord' in f):
      # Each record as a parsed tf.train.Example: protobuf serialises the feature map in
      # no fixed order, so equal examples can differ in bytes.
      a, b = (kill.examples(os.path.join(d, f)) for d in (ref, got))
      n += len(a)
      differ += sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
    return (f'{n} examples (in order) and the prep report and metadata equal the '
            'uninterrupted run\'s', differ)

  def half_written():  # A version folder only appears complete (TFDS renames it).
    return ['1.0.0'] if done(dd) else []

  kill.chain(world, 'data_prep.prepare', [(extract, t_write - t_feat),
                                          (extract, t_write - t_feat),
                                          (write, t_done - t_write)],
             lambda: cmd(dd), {}, total, [t_feat, t_write, t_done], compare, half_written,
             [dd])


def test_kill_training(world, tiny_prepared, tiny_root):
  ref, wd = (os.path.join(world.root, d) for d in ('train_ref', 'train_killed'))
  cmd = lambda workdir: [  # noqa: E731
      sys.executable, 'launch.py', '--config=configs/tiny.py',
      f'--config.data.root={tiny_root}/songs', f'--config.data.data_dir={tiny_root}/prepared',
      '--config.train.num_epochs=6', f'--workdir={workdir}']
  env = {'JAX_PLATFORMS': 'cpu'}
  ckpts = lambda workdir: [  # noqa: E731
      int(d) for d in os.listdir(os.path.join(workdir, 'checkpoints')) if d.isdigit()
  ] if os.path.isdir(os.path.join(workdir, 'checkpoints')) else []
  total, (t_ckpt, t_report, t_done) = kill.timed(
      cmd(ref), w.REPO, env, [lambda: bool(ckpts(ref)),
                              lambda: os.path.isdir(os.path.join(ref, 'report')),
                              lambda: runs.is_finished(ref)])
  first = kill.Point('training, after the first checkpoint', lambda: bool(ckpts(wd)), 0.6)
  state = {}

  def resumed():
    state.setdefault('before', max(ckpts(wd), default=0))
    return max(ckpts(wd), default=0) > state['before']
  again = kill.Point('training, resumed, after a new checkpoint', resumed, 0.3)

  def differ() -> int:  # Rows of the report's tables that differ from the reference's.
    n = 0
    for f in ('metrics.csv', 'predictions.csv', 'history.csv'):
      a = pd.read_csv(os.path.join(ref, 'report', f))
      try:
        pd.testing.assert_frame_equal(a, pd.read_csv(os.path.join(wd, 'report', f)))
      except (AssertionError, OSError, pd.errors.ParserError):
        n += len(a)
    return n

  def complete():  # The whole report, as the uninterrupted run wrote it.
    listed = lambda d: set(os.listdir(os.path.join(d, 'report')))  # noqa: E731
    return runs.is_finished(wd) and listed(ref) <= listed(wd) and not differ()
  # The report's stage ends when it is complete, not when the process has exited.
  report = kill.Point('writing the report', lambda: os.path.isdir(os.path.join(wd, 'report')),
                      0.9, over=complete)

  def compare():
    return 'metrics, predictions and history equal the uninterrupted run\'s', differ()

  points = [(first, t_report - t_ckpt), (again, t_report - t_ckpt),
            (report, t_done - t_report)]

  def cmd_for():
    state.clear()  # `resumed` counts the checkpoints there when the command starts.
    return cmd(wd)
  half_written = lambda: ['finished.json'] if runs.is_finished(wd) else []  # noqa: E731
  kill.chain(world, 'launch.py (training)', points, cmd_for, env, total,
             [t_ckpt, t_report, t_done], compare, half_written, [wd])


def test_kill_folder_prediction(world, trained):
  run = trained[2]
  songs = inputs.good_songs(os.path.join(world.root, 'kill_songs'), 30, world.good)
  folder = os.path.dirname(songs[0][1])
  lyrics_dir = os.path.join(world.root, 'kill_lyrics')
  os.makedirs(lyrics_dir)
  for sid, _, _ in songs:
    shutil.copy(world.good, os.path.join(lyrics_dir, sid + '.txt'))
  ref, out = (os.path.join(world.root, f) for f in ('pred_ref.csv', 'pred_killed.csv'))
  cmd = lambda o: [sys.executable, '-m', 'mer_jax.predict', f'--workdir={run}',  # noqa: E731
                   f'--audio_dir={folder}', f'--lyrics_dir={lyrics_dir}', f'--out={o}']
  lines = lambda p: open(p).read().count('\n') if os.path.exists(p) else 0  # noqa: E731
  total, (t_row,) = kill.timed(cmd(ref), w.REPO, {}, [lambda: lines(ref) >= 2])
  state = {}
  rows = lambda: max(lines(out) - 1, 0)  # noqa: E731  (the header is not a row)

  def after_rows():  # A random number of new rows, at most a third of those left.
    if 'target' not in state:
      left = len(songs) - rows()
      state['target'] = rows() + int(world.rng.integers(1, max(2, left // 3)))
    return rows() >= state['target']

  # Then a delay within about one song (the uninterrupted run's seconds per song).
  points = [(kill.Point(f'predicting a folder{", resumed" if k else ""}, after a random '
                        'number of rows', after_rows, 1.0), (total - t_row) / len(songs))
            for k in range(3)]

  def cmd_for():
    state.clear()
    return cmd(out)

  def compare():
    a, b = (open(p, 'rb').read().splitlines() for p in (ref, out))
    return (f'{len(a) - 1} rows byte-identical to the uninterrupted run\'s',
            len(set(a) ^ set(b)))
  def half_written():  # Rows cut short are repaired on rerun; whole rows must parse.
    data = open(out, 'rb').read() if os.path.exists(out) else b''
    whole = data[:data.rfind(b'\n') + 1].decode()
    rows = pd.read_csv(io.StringIO(whole)) if whole else pd.DataFrame()
    return [] if rows.empty or np.isfinite(rows[['valence', 'arousal']].to_numpy()).all() \
        else ['rows with non-finite values']

  kill.chain(world, 'mer_jax.predict --audio_dir=...', points, cmd_for, {}, total,
             [t_row], compare, half_written, [out, out.replace('.csv', '_errors.csv')])

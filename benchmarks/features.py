"""Feature extraction: 30 s MP3 -> log-mel, songs per second, side by side.

    python benchmarks/features.py --out=benchmarks/out

On `--songs` generated 30 s, 44.1 kHz stereo MP3s (synthetic music, data_prep/synthetic):
  - librosa, one song at a time (the thesis's way): librosa.load + melspectrogram;
  - mer_jax, 1 thread and all cores: `audio_features.iter_song_mel_powers` (what
    data_prep.prepare runs: libsndfile decode + soxr + chunked FFT and banded mel
    filters, on threads);
  - floor: decode + resample alone (`audio_features.load_audio`) on all cores.
The librosa and mer_jax variants end with the dB conversion against the set's maximum
power. Medians of `--repeats` passes, the variants timed in turns. Checks that
mer_jax's log-mels equal librosa's within MAX_DIFF_DB.
Writes <out>/features.csv and .md, and the measured difference to
<out>/features_checks.json (benchmarks/common.py).
"""

from __future__ import annotations

import concurrent.futures
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks import common  # noqa: E402
from mer_jax import audio_features  # noqa: E402

flags.DEFINE_string('out', 'benchmarks/out', 'Folder for features.csv / .md.')
flags.DEFINE_integer('songs', 16, 'Generated 30 s MP3s.')
flags.DEFINE_integer('repeats', 3, 'Timed passes per variant.')
FLAGS = flags.FLAGS
PARAMS = audio_features.MelParams()
# Largest |mer_jax - librosa| log-mel difference allowed, dB (any bin, -80 dB floor).
MAX_DIFF_DB = 1e-3


def _to_db(powers: list[np.ndarray]) -> list[np.ndarray]:
  ref = max(float(p.max()) for p in powers)
  return [audio_features.power_to_db(p, ref, PARAMS.num_frames) for p in powers]


def librosa_serial(paths: list[str]) -> list[np.ndarray]:
  import librosa
  powers = []
  for p in paths:
    y, _ = librosa.load(p, sr=PARAMS.sample_rate, mono=True)
    powers.append(librosa.feature.melspectrogram(
        y=y, sr=PARAMS.sample_rate, n_fft=PARAMS.n_fft, hop_length=PARAMS.hop_length,
        n_mels=PARAMS.n_mels, power=2.0)[:, :PARAMS.num_frames])
  return _to_db(powers)


def mer_jax(paths: list[str], workers: int) -> list[np.ndarray]:
  out = audio_features.iter_song_mel_powers(paths, PARAMS, workers, progress=False)
  return _to_db([p for p, _ in out])


def floor(paths: list[str]) -> list[np.ndarray]:
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as ex:
    return list(ex.map(lambda p: audio_features.load_audio(p, PARAMS), paths))


def main(argv):
  del argv
  cores = os.cpu_count()
  with tempfile.TemporaryDirectory() as tmp:
    paths = common.make_mp3s(tmp, FLAGS.songs)
    ref, mine = librosa_serial(paths), mer_jax(paths, 0)  # Also warms every import.
    floor(paths)
    max_diff = max(float(np.max(np.abs(a - b))) for a, b in zip(ref, mine))
    assert max_diff <= MAX_DIFF_DB, f'log-mels differ from librosa by {max_diff} dB'
    times = common.interleaved_medians({
        'librosa, one song at a time (thesis)': lambda: librosa_serial(paths),
        'mer_jax, 1 thread': lambda: mer_jax(paths, 1),
        f'mer_jax, all cores ({cores} threads)': lambda: mer_jax(paths, 0),
        f'floor: decode + resample, all cores ({cores} threads)': lambda: floor(paths),
    }, FLAGS.repeats)
  base = 'librosa, one song at a time (thesis)'
  rows = [{'benchmark': 'features 30 s MP3 -> log-mel', 'variant': v, 'median_s': t,
           'unit_per_s': FLAGS.songs / t, 'ratio': times[base] / t,
           'baseline_variant': base} for v, t in times.items()]
  mine_v, floor_v = list(times)[2], list(times)[3]
  rows.append({**rows[2], 'ratio': times[floor_v] / times[mine_v],
               'baseline_variant': floor_v})
  common.write_table(
      rows, FLAGS.out, 'features',
      f'Feature extraction ({FLAGS.songs} x 30 s 44.1 kHz stereo MP3 -> 128 x 1292 '
      f'log-mel; {cores} cores; mer_jax vs librosa max |difference| {max_diff:.1e} dB)',
      unit='songs/s')
  common.write_checks(FLAGS.out, 'features', {'librosa_max_abs_diff_db': max_diff,
                                              'librosa_bound_db': MAX_DIFF_DB})


if __name__ == '__main__':
  app.run(main)

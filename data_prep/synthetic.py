"""Synthetic demo dataset: real audio files, lyrics files and a CSV manifest.

Every song is generated from latent valence v and arousal a in 0..1 (seeded, per song),
so that emotion is learnable from both modalities:

* arousal drives tempo (60..180 BPM), note density, loudness (-26..-6 dBFS),
  brightness (harmonics of the lead line) and the level of broadband percussion;
* valence drives harmony: every chord holds both a major and a minor third, mixed
  v : 1 - v, plus a dissonant added tone (tritone) and a 7 Hz tremolo (roughness)
  that grow as v falls, the register of the chords rises with v, and the timbre moves
  from a dark low drone (1 - v) to bright bell pings (v);
* lyrics are lines from word lists: each valence slot takes a positive word with
  probability v, each arousal slot a high-energy word with probability a.

Labels are the latents plus Gaussian label noise whose std (the song's "annotator
std", written beside the labels) depends on the song, as listeners' disagreement does:
`noise_std` grows from `label_noise` for a clear song (latent near 0 or 1) to 4x that
for an ambiguous one (latent 0.5), and the valence noise is 1.5x larger again where
lyrics and music disagree. About 15 % of songs get lyrics written for valence 1 - v
and are marked `congruent = 0` (Experiment 3 uses them). The output is the same form
as a user's own songs: ``manifest.csv`` with
``song_id,audio_path,lyrics_path,valence,arousal,split,congruent,valence_std,arousal_std``
(relative paths),
``audio/<id>.wav`` (mono, 16-bit PCM) and ``lyrics/<id>.txt``. `read_songs(config)` is
the 'synthetic' source of `data_prep.prepare`: it generates the dataset (once) and reads
its manifest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile

import ml_collections
import numpy as np

from data_prep import locking
from data_prep import manifest as manifest_lib

MANIFEST = 'manifest.csv'
_STAMP = 'generator.json'

POSITIVE = ('love joy smile happy sunshine bright beautiful together hope laugh sweet '
            'golden kiss wonderful heaven friends free warm glad delight').split()
NEGATIVE = ('tears lonely pain broken cold lost dark cry empty grave fear sorrow '
            'goodbye hurt ashes bleeding alone regret grey hate').split()
HIGH = ('dance run fire scream jump fast loud wild burn shout electric crash fight '
        'rush storm thunder race explode shake spin').split()
LOW = ('slow sleep quiet calm soft gentle drift whisper rest still breathe lullaby '
       'pillow lazy float silence tender evening rain hush').split()
_TEMPLATES = (
    'I feel the {v} when we {a} tonight',
    'oh the {v} of this {a} heart',
    'we {a} through the {v} and the night',
    'your {v} eyes, a {a} song',
    'in the {a} streets I find {v}',
    'all this {v}, all this {a}',
    'tell me why the {v} feels so {a}',
    'hold on to the {v}, let it {a}',
)


@dataclasses.dataclass(frozen=True)
class SyntheticParams:
  """What the generated dataset depends on; a change regenerates it."""
  num_songs: int = 300  # Songs in total.
  seed: int = 0  # Everything is a function of this seed.
  duration_s: float = 10.0  # Audio length, seconds (<= 30).
  sample_rate: int = 22050  # Hz, of the written files.
  # Std of the Gaussian label noise of the clearest songs (0..1 scale); see noise_std.
  label_noise: float = 0.04
  # False: every song's noise std is label_noise (the demo's data before issue 19).
  heteroscedastic: bool = True
  incongruent_fraction: float = 0.15  # Songs whose lyrics have valence 1 - v.
  split_fractions: tuple = (0.7, 0.15, 0.15)  # train / validation / test.


def _lyrics(v: float, a: float, rng: np.random.Generator) -> str:
  lines = []
  for _ in range(int(rng.integers(8, 13))):
    t = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    vw = rng.choice(POSITIVE if rng.random() < v else NEGATIVE)
    aw = rng.choice(HIGH if rng.random() < a else LOW)
    lines.append(t.format(v=vw, a=aw))
  return '\n'.join(lines) + '\n'


def noise_std(v: float, a: float, congruent: bool, params: SyntheticParams
              ) -> tuple[float, float]:
  """(valence, arousal) std of a song's label noise: label_noise * (1 + 3 (1 - |2x - 1|))
  per latent x (1x clear .. 4x ambiguous), valence x 1.5 for incongruent lyrics; both
  label_noise when not `params.heteroscedastic`."""
  if not params.heteroscedastic:
    return params.label_noise, params.label_noise
  ambiguity = lambda x: 1.0 - abs(2.0 * x - 1.0)  # noqa: E731
  sv = params.label_noise * (1 + 3 * ambiguity(v)) * (1.0 if congruent else 1.5)
  return sv, params.label_noise * (1 + 3 * ambiguity(a))


def _tone(freq: float, n: int, sr: int, harmonics: int, rolloff: float) -> np.ndarray:
  t = np.arange(n) / sr
  out = np.zeros(n)
  for h in range(1, harmonics + 1):
    if freq * h < sr / 2 - 500:
      out += rolloff ** (h - 1) * np.sin(2 * np.pi * freq * h * t)
  return out


def _envelope(n: int, sr: int, attack: float = 0.01, decay: float = 6.0) -> np.ndarray:
  t = np.arange(n) / sr
  return np.minimum(t / attack, 1.0) * np.exp(-decay * t)


def synthesize(v: float, a: float, params: SyntheticParams,
               rng: np.random.Generator) -> np.ndarray:
  """Mono float32 waveform [duration * sr] in -1..1 for latent valence v, arousal a."""
  sr = params.sample_rate
  n = int(round(params.duration_s * sr))
  y = np.zeros(n)
  beat = 60.0 / (60.0 + 120.0 * a)
  # Harmony: one chord per two beats, random root; register rises with valence.
  chord_len = int(2 * beat * sr)
  for start in range(0, n, chord_len):
    m = min(chord_len, n - start)
    root = 700.0 * 2 ** (v * 0.6 + rng.uniform(0, 1))  # 700..2100 Hz, log-spaced bins.
    env = _envelope(m, sr, attack=0.02, decay=1.0)
    # Roughness: a 7 Hz tremolo on the chords, deeper as valence falls.
    env *= 1.0 - 0.9 * (1 - v) * (0.5 + 0.5 * np.sin(2 * np.pi * 7.0 * np.arange(m) / sr))
    chord = (_tone(root, m, sr, 2, 0.3) + _tone(root * 1.5, m, sr, 2, 0.3)
             + v * _tone(root * 2 ** (4 / 12), m, sr, 2, 0.3)  # major third
             + (1 - v) * _tone(root * 2 ** (3 / 12), m, sr, 2, 0.3)  # minor third
             + 0.8 * (1 - v) * _tone(root * 2 ** (6 / 12), m, sr, 1, 0.3)  # tritone
             + 0.6 * _tone(root / 4, m, sr, 3, 0.5))  # bass
    y[start:start + m] += 0.25 * chord * env
  # Lead line: note density and brightness rise with arousal.
  note_len = int(beat / (1 + round(2 * a)) * sr)
  harmonics = 1 + int(round(9 * a))
  for start in range(0, n, note_len):
    m = min(note_len, n - start)
    f = 220.0 * 2 ** (rng.integers(0, 24) / 12)
    y[start:start + m] += (0.15 * _tone(f, m, sr, harmonics, 0.55 + 0.3 * a)
                           * _envelope(m, sr, decay=8.0))
  # Timbre: bright bell pings (level v) against a dark low drone (level 1 - v).
  ping = int(0.12 * sr)
  for start in range(0, n - ping, int(0.25 * sr)):
    f = 3000.0 * 2 ** rng.uniform(0, 1)
    y[start:start + ping] += 0.12 * v * _tone(f, ping, sr, 1, 0.0) * _envelope(
        ping, sr, attack=0.002, decay=30.0)
  t = np.arange(n) / sr
  drone = sum(np.sin(2 * np.pi * 55.0 * k * t + k) / k for k in range(1, 9))
  y += 0.12 * (1 - v) * drone * (1.0 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
  # Percussion: broadband noise bursts on every beat, level rising with arousal.
  hit = int(0.06 * sr)
  for start in range(0, n - hit, int(beat * sr)):
    y[start:start + hit] += (a ** 1.5) * 0.6 * rng.standard_normal(hit) * _envelope(
        hit, sr, attack=0.001, decay=60.0)
  loud_db = -26.0 + 20.0 * a
  y *= 10 ** (loud_db / 20) / max(np.sqrt(np.mean(y ** 2)), 1e-9)
  return np.clip(y, -1.0, 1.0).astype(np.float32)


def _is_current(root: str, params: SyntheticParams) -> bool:
  try:
    with open(os.path.join(root, _STAMP)) as f:
      return json.load(f) == json.loads(json.dumps(dataclasses.asdict(params)))
  except (OSError, ValueError):
    return False


def generate(root: str, params: SyntheticParams = SyntheticParams()) -> str:
  """Writes the dataset under `root` (atomically) unless it is already there.

  Returns:
    Path of the manifest CSV.
  """
  manifest = os.path.join(root, MANIFEST)
  if _is_current(root, params) and os.path.isfile(manifest):
    return manifest
  if not 0 < params.duration_s <= 30:
    raise ValueError(f'duration_s must be in (0, 30], got {params.duration_s}')
  parent = os.path.dirname(os.path.abspath(root))
  os.makedirs(parent, exist_ok=True)
  lock = os.path.join(parent, f'.{os.path.basename(os.path.abspath(root))}.lock')
  with locking.exclusive(lock, f'writing the synthetic dataset {root}'):
    if _is_current(root, params) and os.path.isfile(manifest):
      return manifest  # Written by whoever held the lock before us.
    _write(root, params, parent)
  return manifest


def read_songs(config: ml_collections.ConfigDict
               ) -> tuple[list[manifest_lib.Song], list[dict], list[str]]:
  """The 'synthetic' source: (songs, skipped rows: none, [the manifest read]).

  Generates the dataset of `config.data.synthetic` (SyntheticParams' fields) under
  `config.data.root` unless it is already there, then reads its manifest.
  """
  params = SyntheticParams(**config.data.synthetic.to_dict())
  path = generate(os.path.expanduser(config.data.root), params)
  return manifest_lib.read_manifest(path), [], [path]


def _write(root: str, params: SyntheticParams, parent: str) -> None:
  """Writes the songs into a temporary folder beside `root`, then renames it."""
  import soundfile as sf
  from tqdm import tqdm
  tmp = tempfile.mkdtemp(prefix='.synthetic-', dir=parent)
  try:
    os.makedirs(os.path.join(tmp, 'audio'))
    os.makedirs(os.path.join(tmp, 'lyrics'))
    rng = np.random.default_rng(params.seed)
    order = rng.permutation(params.num_songs)
    n_train = int(round(params.split_fractions[0] * params.num_songs))
    n_val = int(round(params.split_fractions[1] * params.num_songs))
    split_of = np.empty(params.num_songs, dtype=object)
    split_of[order[:n_train]] = 'train'
    split_of[order[n_train:n_train + n_val]] = 'validation'
    split_of[order[n_train + n_val:]] = 'test'
    rows = ['song_id,audio_path,lyrics_path,valence,arousal,split,congruent,'
            'valence_std,arousal_std']
    for i in tqdm(range(params.num_songs), desc='synthetic songs', unit='song'):
      srng = np.random.default_rng([params.seed, i])
      v, a = srng.uniform(0, 1, size=2)
      congruent = srng.random() >= params.incongruent_fraction
      song_id = f'song{i:04d}'
      sf.write(os.path.join(tmp, 'audio', song_id + '.wav'),
               synthesize(v, a, params, srng), params.sample_rate, subtype='PCM_16')
      with open(os.path.join(tmp, 'lyrics', song_id + '.txt'), 'w', encoding='utf-8') as f:
        f.write(_lyrics(v if congruent else 1 - v, a, srng))
      std = np.array(noise_std(v, a, congruent, params))
      lv, la = np.clip(np.array([v, a]) + std * srng.standard_normal(2), 0.0, 1.0)
      rows.append(f'{song_id},audio/{song_id}.wav,lyrics/{song_id}.txt,'
                  f'{lv:.4f},{la:.4f},{split_of[i]},{int(congruent)},'
                  f'{std[0]:.4f},{std[1]:.4f}')
    with open(os.path.join(tmp, MANIFEST), 'w', encoding='utf-8') as f:
      f.write('\n'.join(rows) + '\n')
    with open(os.path.join(tmp, _STAMP), 'w') as f:
      json.dump(dataclasses.asdict(params), f)
    if os.path.exists(root):
      shutil.rmtree(root)
    os.replace(tmp, root)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise

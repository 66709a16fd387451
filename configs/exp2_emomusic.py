"""Experiment 2 on EmoMusic (1000 Songs, audio-only): labels mapped from 1..9 to 0..1 as
(x - 1) / 8; test = MediaEval 2013's evaluation set (125 songs), the development set cut
80/20 into train/validation. The audio towers of Models 1-4 x 3 seeds, baselines, tables
and figures. The 45 s clips: the centred 30 s window.

    python launch.py --config=configs/exp2_emomusic.py \
      --config.data.root=/path/to/emoMusic --workdir=runs/exp2_emomusic

Music2Emo's own split instead (their dataset/emomusic/meta/split/ folder):
    --config.data.split_file=/path/to/split --config.data.split_name=music2emo
"""

from configs import exp2_deam


def get_config():
  config = exp2_deam.get_config()  # Audio-only, 1..9 labels, centred 30 s, the sweep.
  config.data.name = 'emomusic'
  config.data.source = 'emomusic'
  config.data.root = 'data/emoMusic'
  config.data.split = 'mediaeval2013'  # Or 'seeded' (70/15/15 of all songs).
  return config

"""The demo with the pretrained musicnn front-end (frozen) and the MiniLM lyrics tower:
musicnn's song embeddings are computed once per prepared dataset (about a minute on 2
cores), then only the fusion head trains (well under 2 minutes).

    python launch.py --config=configs/demo_musicnn.py --workdir=runs/demo_musicnn

Needs the weights: pip install --no-deps musicnn==0.1.0 (requirements-nodeps.txt).
"""

from configs import demo
from mer_jax import variants


def get_config():
  config = variants.apply(demo.get_config(), 'musicnn')
  # The demo's 6 s songs hold one 3 s patch at musicnn's own hop (187 frames): half a
  # patch apart, every song gives three.
  config.model.musicnn.patch_hop = 93
  config.train.num_epochs = 40
  return config

"""Shared defaults: the thesis's Model 4 (bimodal, frozen text tower) at full size.

Experiments and ablations start from `get_config()` and override a few fields.
Every field can be set on the command line, e.g. `--config.train.learning_rate=3e-4`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # Seeds parameter init, dropout and data shuffling.

  config.data = ml_collections.ConfigDict()
  config.data.name = 'custom'  # Name of the prepared dataset (folder under data_dir).
  config.data.source = 'manifest'  # 'manifest' (a CSV of songs) or 'synthetic' (demo).
  config.data.root = ''  # Folder of the raw dataset (synthetic: where it is generated).
  config.data.manifest = ''  # Manifest CSV; '' means <root>/manifest.csv.
  config.data.data_dir = 'data/prepared'  # Where prepared TFRecord datasets are stored.
  config.data.num_workers = 0  # Processes for audio decoding + log-mel; 0 = all cores.
  config.data.ref_power_split = 'train'  # Split whose max mel power is 0 dB.
  # Synthetic demo dataset (used when source == 'synthetic'); see data_prep/synthetic.py.
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.num_songs = 300  # Songs in total (70/15/15 split).
  config.data.synthetic.seed = 0  # Generator seed.
  config.data.synthetic.duration_s = 30.0  # Length of each song, seconds.
  config.data.synthetic.sample_rate = 22050  # Hz of the written WAV files.
  config.data.synthetic.label_noise = 0.04  # Std of the label noise (0..1 scale).
  config.data.synthetic.incongruent_fraction = 0.15  # Lyrics of the opposite valence.
  config.data.synthetic.split_fractions = (0.7, 0.15, 0.15)  # train/validation/test.

  config.audio = ml_collections.ConfigDict()
  config.audio.sample_rate = 22050  # Hz; audio is resampled to this rate.
  config.audio.n_fft = 2048  # STFT window, samples.
  config.audio.hop_length = 512  # STFT hop, samples.
  config.audio.n_mels = 128  # Mel bands.
  config.audio.num_frames = 1292  # Frames per song (1292 = 30 s); -80 dB padding.

  config.text = ml_collections.ConfigDict()
  config.text.encoder = 'minilm'  # 'minilm' (embedded all-MiniLM-L6-v2) or a BERT dir.
  config.text.max_length = 256  # WordPiece tokens incl. [CLS]/[SEP]; longer is cut.
  config.text.pooling = 'mean'  # 'mean' (masked mean over tokens) or 'cls'.

  config.model = ml_collections.ConfigDict()
  config.model.modality = 'bimodal'  # 'bimodal', 'audio' or 'lyrics'.
  config.model.widths = (64, 128, 256, 512)  # Conv channels of the 4 VGG blocks.
  config.model.convs_per_block = 2  # 3x3 conv + BN + ReLU layers per block.
  config.model.batch_norm = True  # BatchNorm after every conv.
  config.model.bn_momentum = 0.9  # BatchNorm running-average momentum.
  config.model.classifier_hidden = 256  # Width of the audio classifier's hidden layer.
  config.model.audio_dim = 64  # Audio tower output (feature) size.
  config.model.dropout = 0.5  # Dropout in the audio classifier.
  config.model.attention = 'hidden'  # Feature attention gate: 'none'|'hidden'|'output'.
  config.model.fusion_hidden = 128  # Hidden units of the fusion MLP.
  config.model.fusion_dropout = 0.2  # Dropout in the fusion MLP.

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 16  # Global batch (split over all local devices).
  config.train.eval_batch_size = 32  # Eval batch; the last one is padded and masked.
  config.train.num_epochs = 50  # Training epochs.
  config.train.learning_rate = 1e-4  # Adam learning rate.
  config.train.weight_decay = 0.0  # Decoupled weight decay (AdamW); 0 = plain Adam.
  config.train.text_batch_size = 32  # Batch for computing frozen lyrics embeddings.
  return config

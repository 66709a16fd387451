"""Shared defaults: the thesis's Model 4 (bimodal, frozen text tower) at full size.

Experiments and ablations start from `get_config()` and override a few fields.
Every field can be set on the command line, e.g. `--config.train.learning_rate=3e-4`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # What launch.py runs: 'train' (one model), 'sweep' (config.sweep's runs + the
  # experiment report), 'baselines' (labels only), 'cross' (cross-dataset matrix) or
  # 'exp3' (Siamese congruence vs the fusion model's error, see config.exp3).
  config.job = 'train'
  # What 'train' trains: 'fusion' (valence/arousal regressor) or 'siamese' (contrastive
  # audio-lyrics model of Experiment 3, settings in config.siamese).
  config.task = 'fusion'
  config.seed = 0  # Seeds parameter init, dropout, data shuffling, random baseline.

  # Several processes (machines, or one per GPU): `jax.distributed.initialize` with
  # these three when coordinator_address is set ('host:port' of process 0), else with
  # what JAX detects on a cluster (SLURM, Open MPI, ...); one process otherwise.
  config.distributed = ml_collections.ConfigDict()
  config.distributed.coordinator_address = ''
  config.distributed.num_processes = 0  # 0: detected (with no address: 1).
  config.distributed.process_id = -1  # -1: detected.

  config.data = ml_collections.ConfigDict()
  config.data.name = 'custom'  # Name of the prepared dataset (folder under data_dir).
  # 'manifest' (a CSV of songs), 'merge' (MERGE v1.1), 'pmemo' (PMEmo2019), 'deam'
  # (DEAM), 'emomusic' (EmoMusic, 1000 Songs) or 'synthetic' (the demo).
  config.data.source = 'manifest'
  config.data.root = ''  # Folder of the raw dataset (synthetic: where it is generated).
  config.data.manifest = ''  # Manifest CSV; '' means <root>/manifest.csv.
  config.data.merge_variant = 'bimodal_complete'  # MERGE: bimodal/audio _complete/_balanced.
  # MERGE's official split: '70_15_15' or '40_30_30'; EmoMusic: 'mediaeval2013' (test =
  # MediaEval 2013's evaluation set) or 'seeded'.
  config.data.split = '70_15_15'
  config.data.lyrics = True  # Songs need lyrics (False: audio-only data, e.g. DEAM).
  # Songs need valence/arousal labels (False: an unlabelled library for job 'pretrain':
  # a manifest of song_id,audio_path, e.g. written by `python -m data_prep.library`).
  config.data.labels = True
  # PMEmo/DEAM/EmoMusic (no or a partial official split): seed of the stored split.
  config.data.split_seed = 0
  # A published split replacing the release's or the seeded one: a folder of
  # train.txt/validation.txt/test.txt (one id a line; Music2Emo's meta/split/ layout) or
  # a CSV song_id,split. Songs in no list are listed as unused in prep_report.
  config.data.split_file = ''
  # The name of the published split in split_file, as mer_jax/published_results.csv
  # spells it (e.g. 'music2emo'): results.md then says "same split" beside those rows.
  config.data.split_name = ''
  config.data.data_dir = 'data/prepared'  # Where prepared TFRecord datasets are stored.
  config.data.num_workers = 0  # Threads for audio decoding + log-mel; 0 = all cores.
  # Prepare with Apache Beam (data_prep/beam_prep.py; pip install -r
  # requirements-beam.txt): the same prepared data, decoding and log-mel in Beam workers.
  config.data.beam = False
  # Its pipeline options, a Beam command line: no --runner = Beam's FnApiRunner in this
  # process (not the DirectRunner: it first downloads Beam's Prism runner from GitHub);
  # e.g. '--runner=FlinkRunner --flink_master=host:8081' (its workers must read the
  # songs' paths; data_dir must be a filesystem the driver and the workers share).
  config.data.beam_options = ''
  # Folder of <song_id>.npy song embeddings (audio_frontend = 'embeddings').
  config.data.embeddings_dir = ''
  # Split whose max mel power is 0 dB; 'all' is the thesis's whole-dataset reference
  # (it lets test-set loudness into the features).
  config.data.ref_power_split = 'train'
  # Cross-fitting (Exp 3's congruence folds): with folds >= 2 the run trains on the
  # training split without fold `holdout_fold` (seeded by split_seed), and evaluates
  # those songs as split 'heldout'. 0 = every training song.
  config.data.folds = 0
  config.data.holdout_fold = -1
  # Synthetic demo dataset (used when source == 'synthetic'); see data_prep/synthetic.py.
  config.data.synthetic = ml_collections.ConfigDict()
  config.data.synthetic.num_songs = 300  # Songs in total (70/15/15 split).
  config.data.synthetic.seed = 0  # Generator seed.
  config.data.synthetic.duration_s = 30.0  # Length of each song, seconds.
  config.data.synthetic.sample_rate = 22050  # Hz of the written WAV files.
  # Std of the label noise of the clearest songs (0..1 scale); heteroscedastic: up to
  # 4x that for ambiguous songs, x1.5 on valence for incongruent lyrics (the song's
  # annotator std, written to the manifest); False: label_noise for every song.
  config.data.synthetic.label_noise = 0.04
  config.data.synthetic.heteroscedastic = True
  config.data.synthetic.incongruent_fraction = 0.15  # Lyrics of the opposite valence.
  config.data.synthetic.split_fractions = (0.7, 0.15, 0.15)  # train/validation/test.

  config.audio = ml_collections.ConfigDict()
  config.audio.sample_rate = 22050  # Hz; audio is resampled to this rate.
  config.audio.n_fft = 2048  # STFT window, samples.
  config.audio.hop_length = 512  # STFT hop, samples.
  config.audio.n_mels = 128  # Mel bands.
  config.audio.num_frames = 1292  # Frames per song (1292 = 30 s); -80 dB padding.
  config.audio.crop = 'start'  # Longer songs: keep the 'start' or 'center' window.

  config.text = ml_collections.ConfigDict()
  config.text.encoder = 'minilm'  # 'minilm' (embedded all-MiniLM-L6-v2) or a BERT dir.
  config.text.max_length = 256  # WordPiece tokens incl. [CLS]/[SEP]; longer is cut.
  config.text.pooling = 'mean'  # 'mean' (masked mean over tokens) or 'cls'.
  config.text.trainable = False  # Fine-tune the tower (Model 5); frozen: embed once.
  # Fine-tuned tower: read only as many token columns as the prepared data's longest
  # lyrics (rounded up to 8). Padding is masked, so embeddings are unchanged (to float
  # rounding) and a step costs much less; dropout masks differ in shape, so a run's
  # numbers are not bit-identical to one with False.
  config.text.trim_padding = True
  # Fine-tuned tower on one device: training steps run each layer's token-wise parts
  # (dense layers, GELU, LayerNorm, dropout) on the batch's real tokens only, packed
  # (mer_jax/packing.py). The same parameters and dropout masks: numbers equal an
  # unpacked run's to float rounding.
  config.text.pack_tokens = True
  config.text.learning_rate = 2e-5  # Fine-tuned tower: peak learning rate.
  config.text.warmup_steps = 100  # Fine-tuned tower: linear warm-up steps.

  config.model = ml_collections.ConfigDict()
  config.model.modality = 'bimodal'  # 'bimodal', 'audio' or 'lyrics'.
  # Audio front-end (mer_jax/frontends/): 'vgg' (the thesis's tower, trained from
  # scratch), 'musicnn' (MSD musicnn, pretrained; config.model.musicnn) or
  # 'embeddings' (the user's per-song arrays in config.data.embeddings_dir).
  config.model.audio_frontend = 'vgg'
  # The audio tower: the fields of mer_jax.vgg.VGG (Models 1-5 are mer_jax.variants).
  config.model.audio = ml_collections.ConfigDict()
  config.model.audio.widths = (64, 128, 256, 512)  # Conv channels of the 4 VGG blocks.
  config.model.audio.convs_per_block = 2  # 3x3 conv + BN + ReLU layers per block.
  config.model.audio.batch_norm = True  # BatchNorm after every conv.
  config.model.audio.bn_momentum = 0.9  # BatchNorm running-average momentum.
  config.model.audio.hidden = 256  # Width of the audio classifier's hidden layer.
  config.model.audio.out_dim = 64  # Audio tower output (feature) size.
  config.model.audio.dropout = 0.5  # Dropout in the audio classifier.
  config.model.audio.attention = 'hidden'  # Feature attention: 'none'|'hidden'|'output'.
  # musicnn front-end (mer_jax/musicnn.py; weights: pip install --no-deps musicnn==0.1.0).
  config.model.musicnn = ml_collections.ConfigDict()
  config.model.musicnn.patch_hop = 187  # Frames between 3 s patches (187: no overlap).
  config.model.musicnn.pooling = 'mean'  # Over patches: 'mean' (200-d) or 'mean_std' (400-d).
  config.model.musicnn.trainable = False  # Fine-tune it; frozen: embed once per dataset.
  config.model.musicnn.learning_rate = 1e-4  # Fine-tuned: peak learning rate.
  config.model.musicnn.warmup_steps = 100  # Fine-tuned: linear warm-up steps.
  # embeddings front-end: pooling of [frames, dim] files ('mean' or 'mean_std') and the
  # dim every song must have (0: any, the same for all songs).
  config.model.embeddings = ml_collections.ConfigDict()
  config.model.embeddings.pooling = 'mean'
  config.model.embeddings.dim = 0
  # The fusion head: the fields of mer_jax.models.FusionRegressor.
  config.model.fusion = ml_collections.ConfigDict()
  config.model.fusion.hidden = 128  # Hidden units of the fusion MLP (0: linear).
  # A head per dimension, nothing shared (the probe's); False: one MLP, two outputs.
  config.model.fusion.per_dimension = False
  config.model.fusion.dropout = 0.2  # Dropout in the fusion MLP.
  config.model.fusion.text_dropout = 0.0  # Dropout on the lyrics embedding.
  config.model.fusion.modality_dropout = 0.0  # Bimodal: P(lyrics features zeroed) per song.
  # Gate the lyrics features by the song's audio-lyrics congruence (Experiment 3):
  # features * sigmoid(w * congruence + b).
  config.model.fusion.congruence_gate = False
  # Siamese run whose congruence.csv is used (and that scores new songs in prediction).
  config.model.congruence_workdir = ''
  # A CSV song_id,congruence used instead of that run's report for the prepared songs
  # (Exp 3 writes the cross-fitted one); '' = the run's own.
  config.model.congruence_file = ''
  # A run whose best checkpoint's audio tower initialises this model's ('' = random).
  config.model.init_audio_from = ''
  # Output head: 'point' (valence, arousal) or 'gaussian' (a mean and a sigma per
  # dimension: how sure the model is; trained with a Gaussian config.train.loss).
  config.model.head = 'point'

  # Contrastive audio-lyrics model (task = 'siamese'): the audio and lyrics towers above,
  # each with a projection head into a shared, L2-normalised space.
  config.siamese = ml_collections.ConfigDict()
  config.siamese.loss = 'infonce'  # 'infonce' (symmetric, global batch) or 'pairwise'.
  config.siamese.embed_dim = 64  # Size of the shared embedding space.
  config.siamese.proj_hidden = 128  # Hidden units of each projection head.
  config.siamese.init_temperature = 0.07  # InfoNCE softmax temperature at init.
  config.siamese.learn_temperature = True  # InfoNCE: learn the temperature.
  config.siamese.margin = 1.0  # Pairwise: mismatched pairs pushed this far (0..2).
  # Pairwise: mismatched lyrics drawn from 'random' other songs of the batch or from
  # songs of an 'other_quadrant'.
  config.siamese.negatives = 'random'
  config.siamese.text_dropout = 0.0  # Dropout on the lyrics embedding.
  # Validation retrieval metric that picks checkpoints and stops early: 'matched_auc'
  # (matched vs mismatched pair similarities: smooth on small splits) or 'mrr' (mean
  # reciprocal rank).
  config.siamese.selection = 'matched_auc'

  # Augmentations of the log-mel (mer_jax/augment.py), all off by default (a run without
  # them keeps its numbers). With `enabled`, supervised training augments every training
  # batch (validation and test never); pretraining's 'simclr' views use the same chain.
  config.augment = ml_collections.ConfigDict()
  config.augment.enabled = False  # Supervised training: augment the training batches.
  config.augment.crop_frames = 0  # Random crop to this many frames; 0 = the whole window.
  config.augment.shift_frames = 0  # Time shift of up to this many frames either way.
  config.augment.gain_db = 0.0  # Gain of up to this many dB either way (re-floored).
  config.augment.time_masks = 0  # SpecAugment: time masks per example, each ...
  config.augment.time_mask_width = 0  # ... 0..this many frames wide.
  config.augment.freq_masks = 0  # SpecAugment: frequency masks per example, each ...
  config.augment.freq_mask_width = 0  # ... 0..this many mel bands wide.
  # Mixup (supervised only): lam ~ Beta(a, a) per example; 0 = off.
  config.augment.mixup_alpha = 0.0

  # Self-supervised pretraining of the audio tower (job 'pretrain', task 'pretrain'):
  # two views per song, the tower + a projection head, NT-Xent over the global batch.
  config.pretrain = ml_collections.ConfigDict()
  # 'simclr' (CLMR-style views from config.augment's chain) or 'masking' (Myna-style:
  # each view a random masking of most of the log-mel's tiles, the only augmentation).
  config.pretrain.method = 'simclr'
  config.pretrain.temperature = 0.1  # NT-Xent temperature.
  config.pretrain.proj_hidden = 128  # Projection head: hidden units ...
  config.pretrain.proj_dim = 64  # ... and output size (dropped after pretraining).
  config.pretrain.mask_ratio = 0.9  # 'masking': share of the tiles masked in a view.
  config.pretrain.mask_patch = 16  # 'masking': tile side (mel bands = frames).

  # Linear probe (job 'probe', the MARBLE protocol): frozen towers, their song
  # embeddings cached once, a head per dimension trained on them like any run.
  config.probe = ml_collections.ConfigDict()
  config.probe.head = 'linear'  # 'linear', or 'mlp' (one hidden layer, fusion.hidden).
  # The towers compared, one table row each: 'random' (a random VGG of config.model.
  # audio), 'musicnn' (frozen MSD musicnn) or a run's workdir (its best checkpoint's
  # audio tower: pretrained or supervised); () = config.model.init_audio_from, or
  # 'random' when that is unset.
  config.probe.towers = ()

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 16  # Global batch (split over all local devices).
  config.train.eval_batch_size = 32  # Eval batch; the last one is padded and masked.
  # 'float32' or 'bfloat16' (mixed precision, for GPUs/TPUs): the towers and fusion MLP
  # compute in bf16; parameters, optimizer state, BatchNorm statistics, model outputs
  # and the loss stay float32. On CPU bf16 is slower: keep float32 there.
  config.train.compute_dtype = 'float32'
  config.train.prefetch = 2  # Batches transferred to the devices ahead of the step.
  # The training split is read once and kept in memory (mer_jax/kept_split.py) when its
  # arrays take at most this many bytes (MERGE's 2,216 30 s songs: ~1.5 GB); larger
  # splits are read again every epoch. The batches are the same either way.
  config.train.kept_split_bytes = 4 << 30
  config.train.num_epochs = 50  # Training epochs.
  config.train.learning_rate = 1e-4  # Adam learning rate (peak, for cosine).
  config.train.weight_decay = 0.0  # Decoupled weight decay (AdamW); 0 = plain Adam.
  # 'adamw', or 'lars' (LARS, You et al. 2017: SimCLR's optimizer for large batches;
  # momentum 0.9, config.train.weight_decay as its weight decay).
  config.train.optimizer = 'adamw'
  config.train.schedule = 'plateau'  # 'constant', 'plateau' (on val loss) or 'cosine'.
  config.train.warmup_steps = 0  # Linear warm-up steps of the main learning rate.
  config.train.plateau_factor = 0.5  # Plateau: lr multiplier when val loss stalls.
  config.train.plateau_patience = 3  # Plateau: epochs without improvement first.
  config.train.plateau_min_delta = 1e-4  # Plateau: improvement below this is none.
  config.train.plateau_min_scale = 0.01  # Plateau: lr never below this x base lr.
  config.train.early_stopping = True  # Stop when the val loss stops improving.
  # Stop at the (patience + 1)-th consecutive epoch without an improvement > min_delta.
  config.train.early_stopping_patience = 8
  config.train.early_stopping_min_delta = 1e-4  # Smallest val-loss improvement.
  # 'mse' (point head), or for the gaussian head 'gaussian_nll' (NLL of the label
  # mean), 'beta_nll' (NLL weighted by sigma^(2 beta), Seitzer et al. 2022) or
  # 'annotator_kl' (KL from the annotators' N(mean, std^2); songs need their std).
  config.train.loss = 'mse'
  config.train.beta_nll = 0.5  # beta of 'beta_nll' (0: plain NLL, 1: MSE-like means).
  # Gaussian losses: the mean (and towers) learn from the MSE as a point head's, the
  # variance MLP from the loss on detached features (Stirn et al. 2023); False: all
  # from the loss jointly (its 1/sigma^2 weights starve the harder dimension).
  config.train.faithful = True
  config.train.grad_clip_norm = 0.0  # Clip gradients to this global norm; 0 = off.
  config.train.keep_checkpoints = 3  # Latest checkpoints kept (plus the best).
  config.train.text_batch_size = 32  # Batch for computing frozen lyrics embeddings.

  config.eval = ml_collections.ConfigDict()
  # True quadrant of the quadrant metrics and of the quadrant-centre baseline:
  # 'official' (the release's own label where it has one, e.g. MERGE's split files or a
  # manifest's quadrant column; the 0.5 thresholds of the labels for other songs) or
  # 'thresholds' (valence/arousal at 0.5 for every song).
  config.eval.quadrant_source = 'official'
  # Gaussian head: 'validation' scales every sigma per dimension by the factor that
  # minimises the validation NLL, sqrt(mean(((y - mu) / sigma)^2)) (variance scaling,
  # Levi et al. 2022), applied to the report and to prediction; 'none': the raw sigma.
  config.eval.sigma_scaling = 'validation'

  # Runs of an experiment (job = 'sweep'); each goes to <workdir>/runs/<name>/.
  config.sweep = ml_collections.ConfigDict()
  # Ablation models: variants of mer_jax.variants (the thesis's Models 1-5).
  config.sweep.models = ('model1', 'model2', 'model3', 'model4', 'model5')
  config.sweep.seeds = (0, 1, 2)  # Every model is trained once per seed.
  config.sweep.modalities = ('bimodal',)  # Modalities of every model.
  # Also run in ablation_modalities: a model name, 'best' (lowest mean validation loss
  # of the main runs) or '' (no ablation).
  config.sweep.ablation_model = 'best'
  config.sweep.ablation_modalities = ('audio', 'lyrics')  # The modality ablation.
  config.sweep.n_bootstrap = 1000  # Bootstrap resamples for the 95 % CIs.
  # Runs trained at once, each in its own process sharing all the CPUs
  # (mer_jax/run_pool.py): on a CPU one small run leaves cores idle between steps.
  # 1: one after the other, in this process (the only choice on a GPU or with
  # several JAX processes).
  config.sweep.parallel_runs = 1

  # Cross-dataset matrix (job = 'cross'): the datasets and their release folders.
  config.cross = ml_collections.ConfigDict()
  config.cross.names = ()  # The datasets, in the tables' order.
  # name -> {'data': the dataset config's data section, 'crop': its audio.crop};
  # configs/exp2_cross.py builds MERGE, PMEmo and DEAM's with `dataset(get_config())`.
  config.cross.datasets = ml_collections.ConfigDict()
  config.cross.roots = ()  # config.data.root of each of `names`, in the same order.

  # Experiment 3 (job = 'exp3'): <workdir>/exp1 (fusion model, unless exp1_workdir),
  # <workdir>/siamese, <workdir>/gated (congruence-gated fusion), <workdir>/report.
  config.exp3 = ml_collections.ConfigDict()
  # A finished fusion run (its report/predictions.csv is used); '' trains one with this
  # config into <workdir>/exp1.
  config.exp3.exp1_workdir = ''
  config.exp3.siamese_batch_size = 32  # Siamese global batch (InfoNCE negatives).
  config.exp3.siamese_learning_rate = 1e-3  # Siamese learning rate.
  config.exp3.siamese_num_epochs = 50  # Siamese epochs (early stopping on retrieval).
  # Start the Siamese audio tower from the Exp 1 model's: its features already carry
  # valence and arousal, which the lyrics are matched against.
  config.exp3.siamese_warm_start = True
  config.exp3.gated = True  # Also train the congruence-gated fusion and compare.
  config.exp3.num_bins = 5  # Congruence bins (quintiles) for error by congruence.
  # The gated fusion trains on cross-fitted congruence: this many Siamese models (in
  # <workdir>/siamese_folds/), each training song's congruence from the one that did not
  # train on it; validation and test songs from the model trained on every training song.
  # < 2: the full model's own training songs (in-sample, inflated).
  config.exp3.congruence_folds = 5
  return config

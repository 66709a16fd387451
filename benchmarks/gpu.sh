#!/usr/bin/env bash
# Train-step samples/s, MFU and peak memory of Models 4 and 5 on one GPU, in under
# 8 minutes (benchmarks/gpu_bench.py; tables in <out>/gpu.md and <out>/gpu_detail.md).
#
# On a bare CUDA 12 machine (driver >= 525), from the repository root:
#   pip install -U "jax[cuda12]==0.10.2" flax==0.12.8 optax==0.2.8 transformers==4.57.6 \
#       absl-py pandas
#   bash benchmarks/gpu.sh [OUT_DIR] [extra gpu_bench.py flags, e.g. --steps=20]
# Needs neither TensorFlow, clu, librosa nor torch, and downloads nothing (BERT is
# randomly initialised). On a CPU: bash benchmarks/gpu.sh /tmp/gpu --tiny
#
# XLA_PYTHON_CLIENT_MEM_FRACTION: JAX pre-allocates this share of GPU memory (default
# 0.75); 0.9 here leaves the batch-64 settings more room. Peak memory is what XLA's
# allocator actually used, not the pre-allocation.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-benchmarks/out/gpu}"
shift || true
export HF_HUB_OFFLINE=1 USE_TORCH=0 USE_TF=0
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9}"
PY="${PYTHON:-python}"

if command -v nvidia-smi > /dev/null; then nvidia-smi -L || true; fi
timeout 30 "$PY" -c 'import jax; print("jax", jax.__version__, jax.devices())'
# Each setting runs in its own process, stopped at 150 s or at the 400 s budget (later
# settings: 'skipped'); the tables are rewritten after every setting, so even the hard
# stop at 440 s leaves what was measured. 30 + 440 + 10 s < 8 minutes.
timeout --kill-after=10 440 "$PY" benchmarks/gpu_bench.py --out="$OUT" --budget_s=400 \
    --setting_timeout_s=150 "$@"

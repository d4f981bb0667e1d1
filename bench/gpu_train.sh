#!/usr/bin/env bash
# GPU training benchmark: R(2+1)D at batch 32, fp32 eager vs bf16 + channels_last (+ torch.compile), synthetic
# batches and the real loader; prints clips/s and MFU. Run from the repository root on a CUDA machine where v3s
# is installed with its dependencies (pip install -e .), e.g.:   bench/gpu_train.sh --json gpu_train.json
# CPU check of the script itself:          bench/gpu_train.sh --smoke
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export PYTHONUNBUFFERED=1
exec "$PY" bench/gpu_train.py "$@"
